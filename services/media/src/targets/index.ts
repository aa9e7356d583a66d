import type { QbittorrentOptions } from './qbittorrent.ts';
import { createImmichTarget } from './immich.ts';
import { createJellyfinTarget } from './jellyfin.ts';
import { createProwlarrTarget } from './prowlarr.ts';
import { createQbittorrentTarget } from './qbittorrent.ts';
import { createRadarrTarget } from './radarr.ts';
import { createSonarrTarget } from './sonarr.ts';
import type { MediaTarget, TargetLimits, TargetSpec } from './types.ts';

export * from './types.ts';

/** The poller of one service, by kind. Throws MediaError `config` when a credential is missing. */
export function createTarget(spec: TargetSpec, limits: TargetLimits, qbittorrent: QbittorrentOptions): MediaTarget {
  switch (spec.kind) {
    case 'sonarr': return createSonarrTarget(spec, limits);
    case 'radarr': return createRadarrTarget(spec, limits);
    case 'prowlarr': return createProwlarrTarget(spec);
    case 'qbittorrent': return createQbittorrentTarget(spec, limits, qbittorrent);
    case 'jellyfin': return createJellyfinTarget(spec);
    case 'immich': return createImmichTarget(spec);
  }
}

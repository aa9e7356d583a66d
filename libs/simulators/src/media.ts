// The media node's simulators (Sonarr, Radarr, Prowlarr, Jellyfin, Immich) and webhook payloads.
export * from './media-sim.ts';
export * from './arr.ts';
export * from './jellyfin.ts';
export * from './immich.ts';
export * from './media-webhooks.ts';
export * from './qbittorrent.ts';
export * from './qbittorrent-nox.ts';

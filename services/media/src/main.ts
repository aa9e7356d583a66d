import { exitOnStartFailure, runService } from '@homelab/bus';
import { startMedia } from './service.ts';

// The media service: pollers for the media node's services, the webhook receiver, storage checks,
// and `media.status` (docs/media.md). Everything it does is in ./service.ts and the modules it wires.
await runService({
  configArea: 'media',
  name: 'media',
  description: 'Watches the media node (Sonarr, Radarr, Prowlarr, qBittorrent, Jellyfin, Immich, storage) and publishes what happens there',
  async start({ nc, log, config, service, events }) {
    const media = await startMedia({ nc, log, config, service, events });
    return () => media.stop();
  },
}).catch(exitOnStartFailure('media'));

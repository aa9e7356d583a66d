import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseConfig } from '@homelab/config';
import { mediaTargets } from './service.ts';

// The `media:` section of the lab config and the targets the service derives from it.

const lab = (media = '') => `
nodes:
  media-node:
    address: 127.0.0.1
    services:
      jellyfin: { kind: jellyfin, port: 8096, apiKey: jf-key }
      sonarr: { kind: sonarr, port: 8989 }
      sonarr-4k: { kind: sonarr, port: 8990, apiKey: k4 }
      qbittorrent: { kind: qbittorrent, port: 8081, username: admin }
      immich: { kind: immich, port: 2283 }
      ssh: { kind: ssh, port: 22 }
${media}`;

describe('media config', () => {
  it('has defaults for every key', () => {
    const m = parseConfig(lab(), 'lab.yaml').media;
    expect(m).toMatchObject({
      paths: ['/mnt/media', '/mnt/downloads', '/mnt/photos'],
      intervals: { sonarr: 30_000, radarr: 30_000, prowlarr: 300_000, qbittorrent: 10_000, jellyfin: 15_000, immich: 300_000, storage: 60_000 },
      targets: {}, timeoutMs: 10_000, maxResponseBytes: 32 * 1024 * 1024, maxQueueRecords: 5000, queuePageSize: 250, snapshotMaxItems: 500, snapshotHeartbeatMs: 300_000,
      lowSpace: { freePercent: 10, hysteresisPercent: 2 }, webhooks: { enabled: true, host: '0.0.0.0', port: 8095, bodyLimitBytes: 1024 * 1024 },
      qbittorrent: { maxLoginFailures: 3, loginRetryMs: 3_600_000 }, stateTtlDays: 30,
    });
    expect(m.webhooks.secret).toBeUndefined();
    expect(parseConfig(lab(), 'lab.yaml').notConfigured).toContainEqual({ area: 'media', message: 'media webhooks: no shared secret (media.webhooks.secret, MEDIA_WEBHOOK_SECRET)' });
  });

  it('derives one target per media service, with per-kind intervals, per-target overrides and the environment', () => {
    const config = parseConfig(lab(`
media:
  intervals: { sonarr: 60000 }
  targets:
    sonarr-4k: { intervalMs: 120000, timeoutMs: 2000 }
    immich: { enabled: false }
`), 'lab.yaml', { SONARR_API_KEY: 'from-env', QBITTORRENT_PASSWORD: 'pw', QBITTORRENT_URL: 'http://127.0.0.1:18081', MEDIA_WEBHOOK_SECRET: 's'.repeat(20), MEDIA_WEBHOOK_PORT: '18095' });
    const targets = mediaTargets(config);
    expect(targets.map((t) => [t.name, t.kind, t.url, t.intervalMs, t.timeoutMs])).toEqual([
      ['jellyfin', 'jellyfin', 'http://127.0.0.1:8096', 15_000, 10_000],
      ['sonarr', 'sonarr', 'http://127.0.0.1:8989', 60_000, 10_000],
      ['sonarr-4k', 'sonarr', 'http://127.0.0.1:8990', 120_000, 2000],
      ['qbittorrent', 'qbittorrent', 'http://127.0.0.1:18081', 10_000, 10_000],
    ]);
    expect(targets[1]).toMatchObject({ apiKey: 'from-env' });
    expect(targets[2]).toMatchObject({ apiKey: 'k4' });
    expect(targets[3]).toMatchObject({ username: 'admin', password: 'pw' });
    expect(config.media.webhooks).toMatchObject({ secret: 's'.repeat(20), port: 18095 });
  });

  it('rejects unknown keys, short secrets and targets that are not media services', () => {
    expect(() => parseConfig(lab('media:\n  intervalz: {}\n'), 'lab.yaml')).toThrow(new ConfigError('lab.yaml', 'media.intervalz', 'unknown key'));
    expect(() => parseConfig(lab('media:\n  webhooks: { secret: short }\n'), 'lab.yaml')).toThrow(ConfigError);
    expect(() => parseConfig(lab(), 'lab.yaml', { MEDIA_WEBHOOK_SECRET: 'short' })).toThrow(/media\.webhooks\.secret: at least 16 characters/);
    expect(() => parseConfig(lab(), 'lab.yaml', { MEDIA_WEBHOOK_PORT: 'x' })).toThrow(/MEDIA_WEBHOOK_PORT/);
    expect(() => parseConfig(lab('media:\n  targets: { ssh: { intervalMs: 5 } }\n'), 'lab.yaml')).toThrow(/media\.targets\.ssh: no media service/);
  });

  it('reads the shipped configs', () => {
    const file = new URL('../../../config/lab.yaml', import.meta.url).pathname;
    const targets = mediaTargets(loadConfig({ file, env: {} }));
    expect(targets.map((t) => `${t.name} ${t.url}`)).toEqual([
      'jellyfin http://192.168.1.9:8096', 'sonarr http://192.168.1.9:8989', 'radarr http://192.168.1.9:7878',
      'prowlarr http://192.168.1.9:9696', 'qbittorrent http://192.168.1.9:8081', 'immich http://192.168.1.9:2283',
    ]);
    const demo = loadConfig({ file: new URL('../../../config/demo.yaml', import.meta.url).pathname, env: {} });
    expect(demo.media.webhooks).toMatchObject({ host: '127.0.0.1' });
  });
});

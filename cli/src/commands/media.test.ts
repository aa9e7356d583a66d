import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MediaStatus } from '@homelab/bus';
import { connectAs, startNatsServer, type TestNatsServer } from '@homelab/testing';
import { formatMedia, mediaCommand, mediaExitCode } from './media.ts';

function sink(): { out: Writable; text: () => string } {
  let text = '';
  return { out: new Writable({ write(c, _e, cb) { text += String(c); cb(); } }), text: () => text };
}

const AT = '2026-11-27T12:00:00.000Z';
const status: MediaStatus = {
  at: AT,
  targets: [
    { name: 'sonarr', kind: 'sonarr', url: 'http://192.168.1.9:8989', intervalMs: 30_000, ok: true, lastPollAt: '2026-11-27T11:59:50.000Z', lastSuccessAt: '2026-11-27T11:59:50.000Z' },
    { name: 'radarr', kind: 'radarr', url: 'http://192.168.1.9:7878', intervalMs: 30_000, ok: false, lastPollAt: '2026-11-27T11:59:55.000Z', error: { reason: 'auth', message: '/api/v3/system/status: HTTP 401, the API key was refused', since: '2026-11-27T11:50:00.000Z' } },
  ],
  queue: [{
    source: 'sonarr', kind: 'sonarr', at: AT, totalRecords: 2, truncated: false,
    items: [
      { downloadId: 'aa'.repeat(20), title: 'The.Expanse.S01E01.1080p.BluRay-GRP', status: 'downloading', trackedDownloadStatus: 'ok', trackedDownloadState: 'downloading', phase: 'downloading', progress: 0.75, size: 1e9, sizeLeft: 2.5e8, timeLeft: '00:05:00', records: 1 },
      { downloadId: 'bb'.repeat(20), title: 'The.Expanse.S01E02.1080p.BluRay-GRP', status: 'completed', trackedDownloadState: 'importPending', phase: 'completed', progress: 1, size: 1e9, sizeLeft: 0, records: 1 },
    ],
  }],
  transfer: [{
    source: 'qbittorrent', kind: 'qbittorrent', at: AT, version: 'v4.5.2', connectionStatus: 'connected', dlSpeed: 5 * 1024 * 1024, upSpeed: 1024 * 1024, dlData: 0, upData: 0, dlRateLimit: 0, upRateLimit: 0, dhtNodes: 0,
    counts: { total: 3, downloading: 2, seeding: 1, paused: 0, checking: 0, errored: 0 }, truncated: false,
    torrents: [
      { hash: 'aa'.repeat(20), name: 'The.Expanse.S01E01.1080p.BluRay-GRP', state: 'downloading', phase: 'downloading', progress: 0.75, size: 1e9, amountLeft: 2.5e8, dlSpeed: 1, upSpeed: 0, eta: 300, category: 'tv', tags: '', savePath: '/downloads', ratio: 0, numSeeds: 3, numLeechs: 0 },
      { hash: 'cc'.repeat(20), name: 'debian-13.iso', state: 'downloading', phase: 'downloading', progress: 0.125, size: 4e9, amountLeft: 3.5e9, dlSpeed: 1, upSpeed: 0, eta: 3725, category: '', tags: '', savePath: '/downloads', ratio: 0, numSeeds: 9, numLeechs: 1 },
      { hash: 'dd'.repeat(20), name: 'seeding.mkv', state: 'stalledUP', phase: 'completed', progress: 1, size: 1e9, amountLeft: 0, dlSpeed: 0, upSpeed: 0, eta: 8_640_000, category: '', tags: '', savePath: '/downloads', ratio: 2, numSeeds: 0, numLeechs: 0 },
    ],
  }],
  sessions: [{
    source: 'jellyfin', kind: 'jellyfin', at: AT, sessions: 2,
    streams: [{
      key: 'tv:1', deviceId: 'tv', deviceName: 'Living Room TV', user: 'alice', item: { id: '1', name: 'Dulcinea', type: 'Episode', seriesName: 'The Expanse', seasonNumber: 1, episodeNumber: 1, runTimeTicks: 34_800_000_000 },
      playMethod: 'Transcode', isPaused: true, positionTicks: 7_500_000_000, transcoding: { videoCodec: 'h264', isVideoDirect: false, isAudioDirect: true, audioCodec: 'aac', reasons: ['VideoCodecNotSupported'] },
    }],
  }],
  library: [],
  storage: {
    at: AT, thresholds: { freePercent: 10, hysteresisPercent: 2 },
    paths: [
      { path: '/mnt/media', ok: true, totalBytes: 8 * 1024 ** 4, usedBytes: 7.5 * 1024 ** 4, freeBytes: 0.5 * 1024 ** 4, usedPercent: 93.75, freePercent: 6.25, low: true },
      { path: '/mnt/downloads', ok: false, error: 'missing', low: false },
    ],
  },
  webhooks: { enabled: true, port: 8095 },
};

describe('formatMedia', () => {
  it('shows what downloads (queues, and torrents no queue knows), what plays, storage and services', () => {
    expect(formatMedia(status)).toBe([
      'Downloading (3)',
      '  qbittorrent: ↓ 5.0 MiB/s  ↑ 1.0 MiB/s  2 downloading, 1 seeding, 3 torrents  (connected)',
      '  SOURCE       TITLE                                  DONE  STATE        LEFT',
      '  sonarr       The.Expanse.S01E01.1080p.BluRay-GRP   75.0%  downloading  00:05:00',
      '  sonarr       The.Expanse.S01E02.1080p.BluRay-GRP  100.0%  importing    -',
      '  qbittorrent  debian-13.iso                         12.5%  downloading  1h 02m',
      '',
      'Playing (1)',
      '  USER   DEVICE          TITLE                        METHOD                  POSITION',
      '  alice  Living Room TV  The Expanse S01E01 Dulcinea  Transcode (video→h264)  12:30 / 58:00 (paused)',
      '',
      'Storage (low below 10% free)',
      '  PATH               SIZE     USED       FREE  USE%',
      '  /mnt/media      8.0 TiB  7.5 TiB  512.0 GiB   94%  LOW',
      '  /mnt/downloads        -        -          -     -  MISSING',
      '',
      'Services (webhooks on port 8095)',
      '  NAME    KIND    STATE  DETAIL',
      '  sonarr  sonarr  ok     polled 10s ago, every 30 s',
      '  radarr  radarr  AUTH   /api/v3/system/status: HTTP 401, the API key was refused (since 10m ago)',
      '',
    ].join('\n'));
  });

  it('prints one section, and says when there is nothing', () => {
    const empty: MediaStatus = { ...status, queue: [], transfer: [], sessions: [], targets: [], storage: null, webhooks: { enabled: false } };
    expect(formatMedia(empty, 'downloads')).toBe('Downloading (0)\n  nothing\n');
    expect(formatMedia(empty, 'playing')).toBe('Playing (0)\n  nothing\n');
    expect(formatMedia(empty, 'storage')).toBe('Storage\n  not measured yet\n');
    expect(formatMedia(empty, 'services')).toBe('Services\n  none configured\n');
    expect(mediaExitCode(empty)).toBe(0);
    expect(mediaExitCode(status)).toBe(1);
  });
});

describe('homelab media over NATS', () => {
  let nats: TestNatsServer;
  beforeAll(async () => { nats = await startNatsServer(); });
  afterAll(async () => { await nats?.[Symbol.asyncDispose](); });

  it('asks media.status as the scripts user and prints it, or its JSON', async () => {
    await using media = await connectAs(nats, 'media');
    media.subscribe('media.status', { queue: 'media', callback: (_e, msg) => { msg.respond(new TextEncoder().encode(JSON.stringify(status))); } });
    await media.flush();
    await using nc = await connectAs(nats, 'scripts');
    const a = sink();
    expect(await mediaCommand(nc, ['playing'], a.out)).toBe(1);
    expect(a.text()).toContain('alice  Living Room TV  The Expanse S01E01 Dulcinea');
    const b = sink();
    await mediaCommand(nc, ['--json'], b.out);
    expect(JSON.parse(b.text())).toEqual(status);
  });

  it('exits 2 with a clear message when nothing answers, and on bad arguments', async () => {
    await using nc = await connectAs(nats, 'scripts');
    const a = sink();
    expect(await mediaCommand(nc, ['--timeout', '500'], a.out)).toBe(2);
    expect(a.text()).toMatch(/^cannot get the media node's status: the media service (is not running|did not answer)/);
    const b = sink();
    expect(await mediaCommand(nc, ['torrents'], b.out)).toBe(64);
    expect(b.text()).toContain("unknown section 'torrents'");
    const c = sink();
    expect(await mediaCommand(nc, ['--help'], c.out)).toBe(0);
    expect(c.text()).toContain('usage: homelab media');
  });
});

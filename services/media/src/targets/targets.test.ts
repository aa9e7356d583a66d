import { createServer } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MediaLibrarySnapshotSchema, MediaQueueSnapshotSchema, MediaSessionsSnapshotSchema, validator } from '@homelab/bus';
import {
  startArrSimulator, startImmichSimulator, startJellyfinSimulator, type ArrSimulator, type ImmichSimulator, type JellyfinSimulator,
} from '@homelab/simulators';
import { MediaError } from '../errors.ts';
import { createTarget, type MediaTarget, type PollResult, type TargetSpec } from './index.ts';
import { OWN_DEVICE_ID } from './jellyfin.ts';

// Each target's poller against its simulator: the real shapes mapped, and every fault of the issue
// reported as a MediaError with its reason and a message that never carries the key.

const KEY = 'k3y-' + 'x'.repeat(28);
const LIMITS = { maxQueueRecords: 5000, queuePageSize: 250, snapshotMaxItems: 500 };
const QB = { maxLoginFailures: 3, loginRetryMs: 3_600_000 };

function spec(kind: TargetSpec['kind'], url: string, extra: Partial<TargetSpec> = {}): TargetSpec {
  return { name: kind, kind, url, apiKey: KEY, intervalMs: 1000, timeoutMs: 1000, maxResponseBytes: 8 * 1024 * 1024, ...extra };
}

async function poll(target: MediaTarget): Promise<PollResult> {
  return target.poll(new AbortController().signal);
}

async function pollError(target: MediaTarget): Promise<MediaError> {
  const err = await poll(target).then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(MediaError);
  const e = err as MediaError;
  expect(e.message).not.toContain(KEY);
  expect(e.message).not.toMatch(/apikey=/i);
  return e;
}

const checkQueue = validator(MediaQueueSnapshotSchema);
const checkLibrary = validator(MediaLibrarySnapshotSchema);
const checkSessions = validator(MediaSessionsSnapshotSchema);

describe('Sonarr target', () => {
  let sim: ArrSimulator;
  beforeAll(async () => { sim = await startArrSimulator({ app: 'sonarr', apiKey: KEY }); });
  afterAll(() => sim.close());
  beforeEach(() => { sim.setFaults({}); sim.fillQueue(0); });

  it('maps status, health, disks, wanted counts and the queue grouped by download', async () => {
    sim.setHealth([{ source: 'DownloadClientCheck', type: 'error', message: 'Unable to communicate with qBittorrent', wikiUrl: 'https://wiki.servarr.com/sonarr/system' }]);
    sim.setWanted({ missing: 7, cutoff: 2 });
    const pack = sim.addQueueItem({ title: 'Show.S02.1080p.WEB-DL-GRP', size: 20_000_000_000, sizeleft: 5_000_000_000 });
    sim.addQueueItem({ title: 'Show.S02.1080p.WEB-DL-GRP', downloadId: pack.downloadId!, episodeId: 99 }); // same pack, next episode
    sim.addQueueItem({ title: 'Other.S01E01-GRP', status: 'delay', downloadId: undefined, trackedDownloadState: undefined });
    const result = await poll(createTarget(spec('sonarr', sim.url), LIMITS, QB));
    const [library, queue] = result.snapshots;
    expect(library!.key).toBe('mediaLibrary');
    expect(checkLibrary.check(library!.payload)).toBe(true);
    expect(library!.payload).toMatchObject({
      source: 'sonarr', kind: 'sonarr', version: expect.stringMatching(/^4\./), missing: 7, cutoffUnmet: 2,
      health: [{ source: 'DownloadClientCheck', type: 'error' }], diskSpace: expect.arrayContaining([{ path: '/tv', label: 'media', freeBytes: expect.any(Number), totalBytes: expect.any(Number) }]),
    });
    expect(queue!.key).toBe('mediaQueue');
    expect(checkQueue.check(queue!.payload)).toBe(true);
    const items = (queue!.payload as { items: Record<string, unknown>[] }).items;
    expect(items).toHaveLength(2);
    expect(items[0]).toMatchObject({ downloadId: pack.downloadId!.toLowerCase(), phase: 'downloading', progress: 0.75, records: 2, seriesId: 1, quality: 'Bluray-1080p', downloadClient: 'qBittorrent' });
    expect(items[1]).toMatchObject({ downloadId: null, phase: 'waiting', status: 'delay' });
    expect(result.downloads).toMatchObject({ complete: true, observations: [{ id: pack.downloadId!.toLowerCase(), rawId: pack.downloadId, state: 'downloading' }] });
    expect(sim.requests.every((r) => !r.path.startsWith('/api/') || r.headers['x-api-key'] === KEY)).toBe(true);
  });

  it('reads every page of a huge queue, and reports `too_large` past media.maxQueueRecords', async () => {
    sim.fillQueue(3000);
    const target = createTarget(spec('sonarr', sim.url, { timeoutMs: 5000 }), { ...LIMITS, snapshotMaxItems: 100 }, QB);
    const all = await poll(target);
    expect(all.downloads!.observations).toHaveLength(3000);
    expect(all.downloads!.complete).toBe(true);
    expect(all.problems).toEqual([]);
    expect(all.snapshots[1]!.payload).toMatchObject({ totalRecords: 3000, truncated: true });
    expect((all.snapshots[1]!.payload as { items: unknown[] }).items).toHaveLength(100);
    const capped = await poll(createTarget(spec('sonarr', sim.url, { timeoutMs: 5000 }), { ...LIMITS, maxQueueRecords: 1000 }, QB));
    expect(capped.downloads).toMatchObject({ complete: false });
    expect(capped.downloads!.observations).toHaveLength(1000);
    expect(capped.problems![0]).toMatchObject({ reason: 'too_large' });
  });

  it('looks up what became of a download in the history', async () => {
    const item = sim.addQueueItem({ title: 'A' });
    const failed = sim.addQueueItem({ title: 'B' });
    sim.addHistory({ downloadId: item.downloadId!, eventType: 'grabbed' });
    sim.addHistory({ downloadId: item.downloadId!, eventType: 'downloadFolderImported' });
    sim.addHistory({ downloadId: failed.downloadId!, eventType: 'downloadFailed' });
    const result = await poll(createTarget(spec('sonarr', sim.url), LIMITS, QB));
    const signal = new AbortController().signal;
    expect(await result.downloads!.resolveGone!(item.downloadId!, signal)).toBe('imported');
    expect(await result.downloads!.resolveGone!(failed.downloadId!, signal)).toBe('failed');
    expect(await result.downloads!.resolveGone!('NOPE', signal)).toBe('removed');
  });

  it('reports each fault with its reason', async () => {
    const target = createTarget(spec('sonarr', sim.url, { timeoutMs: 300 }), LIMITS, QB);
    expect(await pollError(createTarget(spec('sonarr', sim.url, { apiKey: 'wrong' }), LIMITS, QB))).toMatchObject({ reason: 'auth', status: 401 });
    sim.setFaults({ status: 500 });
    expect(await pollError(target)).toMatchObject({ reason: 'http', status: 500 });
    sim.setFaults({ delayMs: 1000 });
    expect(await pollError(target)).toMatchObject({ reason: 'timeout' });
    sim.setFaults({ truncateJson: true });
    expect(await pollError(target)).toMatchObject({ reason: 'invalid_json' });
    sim.setFaults({ dropBody: true });
    expect(await pollError(target)).toMatchObject({ reason: 'invalid_json', message: expect.stringContaining('cut off') });
    sim.setFaults({ htmlPage: true });
    expect(await pollError(target)).toMatchObject({ reason: 'not_json' });
    sim.setFaults({ htmlPage: true, status: 502 });
    expect(await pollError(target)).toMatchObject({ reason: 'http', status: 502, message: expect.stringContaining('HTML') });
    sim.setFaults({});
    expect(await pollError(createTarget(spec('sonarr', `${sim.url}/sonarr`), LIMITS, QB))).toMatchObject({ reason: 'not_json' }); // wrong URL base: the web UI answers
    sim.fillQueue(20);
    expect(await pollError(createTarget(spec('sonarr', sim.url, { maxResponseBytes: 4096 }), LIMITS, QB))).toMatchObject({ reason: 'too_large' });
  });

  it('reports a service that is down as unreachable', async () => {
    const port = await new Promise<number>((resolve) => { const s = createServer(); s.listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => resolve(p)); }); });
    expect(await pollError(createTarget(spec('sonarr', `http://127.0.0.1:${port}`), LIMITS, QB))).toMatchObject({ reason: 'unreachable', message: expect.stringContaining('ECONNREFUSED') });
  });

  it('refuses to start without an API key', () => {
    expect(() => createTarget(spec('sonarr', sim.url, { apiKey: undefined }), LIMITS, QB)).toThrow(expect.objectContaining({ reason: 'config' }) as unknown as Error);
  });
});

describe('Radarr target', () => {
  it('counts missing movies from /movie before v5.6', async () => {
    await using sim = await startArrSimulator({ app: 'radarr', apiKey: KEY, legacyWanted: true });
    sim.setWanted({ missing: 4 });
    sim.addQueueItem({ title: 'Movie.2024-GRP', status: 'completed', trackedDownloadState: 'importPending' });
    const result = await poll(createTarget(spec('radarr', sim.url), LIMITS, QB));
    expect(result.snapshots[0]!.payload).toMatchObject({ kind: 'radarr', missing: 4, cutoffUnmet: null });
    expect((result.snapshots[1]!.payload as { items: unknown[] }).items[0]).toMatchObject({ phase: 'completed', movieId: 1 });
    expect(result.downloads!.observations[0]).toMatchObject({ state: 'completed', info: { movieId: 1 } });
  });
});

describe('Prowlarr target', () => {
  it('reports indexers, the disabled ones and their stats', async () => {
    await using sim = await startArrSimulator({ app: 'prowlarr', apiKey: KEY });
    sim.setIndexers(
      [{ id: 1, name: 'Nyaa.si', enable: true, protocol: 'torrent', privacy: 'public', implementation: 'Cardigann', priority: 25 }, { id: 2, name: 'Old', enable: false, protocol: 'usenet', privacy: 'private', implementation: 'Newznab', priority: 25 }],
      [{ indexerId: 1, disabledTill: '2026-11-28T10:00:00Z', mostRecentFailure: '2026-11-27T09:00:00Z' }],
    );
    const result = await poll(createTarget(spec('prowlarr', sim.url), LIMITS, QB));
    expect(checkLibrary.check(result.snapshots[0]!.payload)).toBe(true);
    expect(result.snapshots[0]!.payload).toMatchObject({
      kind: 'prowlarr', version: expect.any(String),
      indexers: { total: 2, enabled: 1, failing: [{ id: 1, name: 'Nyaa.si', disabledTill: '2026-11-28T10:00:00Z' }] },
      stats: [{ indexerId: 1, name: 'Nyaa.si', failedQueries: 9, queries: 120 }, { indexerId: 2, failedQueries: 0 }],
    });
  });
});

describe('Jellyfin target', () => {
  let sim: JellyfinSimulator;
  beforeAll(async () => { sim = await startJellyfinSimulator({ apiKey: KEY, legacyAuth: false }); });
  afterAll(() => sim.close());
  beforeEach(() => sim.setFaults({}));

  it('maps sessions to streams (play method, transcoding) and item counts to camelCase', async () => {
    const { itemId } = sim.play({ deviceId: 'tv-1', userName: 'alice', item: { name: 'Pilot', type: 'Episode', seriesName: 'The Expanse', seasonNumber: 1, episodeNumber: 1 }, playMethod: 'Transcode', transcoding: { transcodeReasons: ['AudioCodecNotSupported'] } });
    sim.addSession({ deviceId: 'phone' });
    sim.addSession({ deviceId: OWN_DEVICE_ID, client: 'Homelab Gateway' });
    const result = await poll(createTarget(spec('jellyfin', sim.url), LIMITS, QB));
    const [library, sessions] = result.snapshots;
    expect(checkLibrary.check(library!.payload)).toBe(true);
    expect(library!.payload).toMatchObject({ kind: 'jellyfin', version: '10.11.2', serverName: 'media-node', counts: { movieCount: 412, episodeCount: 2316, itemCount: 4775 } });
    expect(checkSessions.check(sessions!.payload)).toBe(true);
    expect(sessions!.payload).toMatchObject({ sessions: 2 });
    expect(result.streams).toEqual([expect.objectContaining({
      key: `tv-1:${itemId}`, deviceId: 'tv-1', user: 'alice', playMethod: 'Transcode', isPaused: false,
      item: expect.objectContaining({ id: itemId, name: 'Pilot', type: 'Episode', seriesName: 'The Expanse', seasonNumber: 1, episodeNumber: 1 }),
      transcoding: expect.objectContaining({ videoCodec: 'h264', isVideoDirect: false, reasons: ['AudioCodecNotSupported'] }),
    })]);
    const auth = sim.requests.find((r) => r.path.startsWith('/Sessions'))!.headers.authorization;
    expect(auth).toMatch(/^MediaBrowser Token="k3y-x+", Client="Homelab Gateway"/);
    sim.stop('tv-1');
  });

  it('reports a wrong key as auth and an HTML page as not_json', async () => {
    expect(await pollError(createTarget(spec('jellyfin', sim.url, { apiKey: 'wrong' }), LIMITS, QB))).toMatchObject({ reason: 'auth', status: 401 });
    sim.setFaults({ htmlPage: true });
    expect(await pollError(createTarget(spec('jellyfin', sim.url), LIMITS, QB))).toMatchObject({ reason: 'not_json' });
  });
});

describe('Immich target', () => {
  let sim: ImmichSimulator;
  beforeAll(async () => { sim = await startImmichSimulator({ apiKey: KEY, userApiKey: 'user-' + 'y'.repeat(27) }); });
  afterAll(() => sim.close());

  it('maps statistics and storage', async () => {
    const result = await poll(createTarget(spec('immich', sim.url), LIMITS, QB));
    expect(checkLibrary.check(result.snapshots[0]!.payload)).toBe(true);
    expect(result.snapshots[0]!.payload).toMatchObject({
      kind: 'immich', version: '1.135.3', photos: 12_282, videos: 576, usageBytes: 113_500_000_000,
      users: [{ userName: 'alice', photos: 10_234, quotaBytes: null }, { userName: 'bob', quotaBytes: 200_000_000_000 }],
      disk: { sizeBytes: 3_998_614_495_232, usedBytes: 1_154_243_428_352, usagePercent: expect.any(Number) },
    });
  });

  it('reports a non-admin key (403 on statistics) and a wrong key as auth', async () => {
    expect(await pollError(createTarget(spec('immich', sim.url, { apiKey: 'user-' + 'y'.repeat(27) }), LIMITS, QB))).toMatchObject({ reason: 'auth', status: 403 });
    expect(await pollError(createTarget(spec('immich', sim.url, { apiKey: 'nope' }), LIMITS, QB))).toMatchObject({ reason: 'auth', status: 401 });
  });
});

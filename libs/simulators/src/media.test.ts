import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startArrSimulator, type ArrSimulator } from './arr.ts';
import { startImmichSimulator, type ImmichSimulator } from './immich.ts';
import { startJellyfinSimulator, type JellyfinSimulator } from './jellyfin.ts';
import { HTML_ERROR_PAGE } from './media-sim.ts';
import { arrDownloadPayload, arrGrabPayload, jellyfinPlaybackStartPayload } from './media-webhooks.ts';

// The media node's simulators against the shapes of the real APIs (lab-apis.md, Sonarr/Radarr/Prowlarr
// OpenAPI, Jellyfin's and Immich's DTOs): paging, enums, PascalCase, auth, faults.

const KEY = 'a'.repeat(32);

async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: unknown; text: string; type: string | null }> {
  const res = await fetch(url, { headers });
  const text = await res.text();
  let body: unknown;
  try { body = JSON.parse(text); } catch { body = undefined; }
  return { status: res.status, body, text, type: res.headers.get('content-type') };
}

describe('Sonarr simulator', () => {
  let sim: ArrSimulator;
  beforeAll(async () => { sim = await startArrSimulator({ app: 'sonarr', apiKey: KEY }); });
  afterAll(() => sim.close());
  beforeEach(() => { sim.setFaults({}); sim.fillQueue(0); });

  it('answers /ping without a key and everything under /api only with it', async () => {
    expect((await get(`${sim.url}/ping`)).body).toEqual({ status: 'OK' });
    const denied = await get(`${sim.url}/api/v3/system/status`);
    expect(denied.status).toBe(401);
    expect(denied.text).toBe('');
    expect((await get(`${sim.url}/api/v3/system/status`, { 'x-api-key': 'wrong' })).status).toBe(401);
    const status = await get(`${sim.url}/api/v3/system/status`, { 'x-api-key': KEY });
    expect(status.body).toMatchObject({ appName: 'Sonarr', instanceName: 'Sonarr', version: expect.stringMatching(/^4\./), startTime: expect.any(String) });
    expect((await get(`${sim.url}/api/v3/system/status?apikey=${KEY}`)).status).toBe(200);
    expect((await get(`${sim.url}/api/v3/system/status`, { authorization: `Bearer ${KEY}` })).status).toBe(200);
  });

  it('pages the queue with the real envelope and record shape', async () => {
    sim.fillQueue(25);
    const page2 = await get(`${sim.url}/api/v3/queue?page=2&pageSize=10`, { 'x-api-key': KEY });
    const body = page2.body as { page: number; pageSize: number; totalRecords: number; sortKey: string; records: Record<string, unknown>[] };
    expect(body).toMatchObject({ page: 2, pageSize: 10, totalRecords: 25, sortKey: 'timeleft', sortDirection: 'ascending' });
    expect(body.records).toHaveLength(10);
    expect(body.records[0]).toMatchObject({
      seriesId: 1, episodeId: expect.any(Number), title: expect.any(String), size: expect.any(Number), sizeleft: expect.any(Number), status: 'downloading',
      trackedDownloadStatus: 'ok', trackedDownloadState: 'downloading', downloadId: expect.stringMatching(/^[0-9A-F]{40}$/), protocol: 'torrent',
      quality: { quality: { name: 'Bluray-1080p' } }, statusMessages: [], id: expect.any(Number),
    });
    expect(body.records[0]).not.toHaveProperty('errorMessage'); // nulls are omitted, as Sonarr does
    const last = (await get(`${sim.url}/api/v3/queue?page=3&pageSize=10`, { 'x-api-key': KEY })).body as { records: unknown[] };
    expect(last.records).toHaveLength(5);
    expect((await get(`${sim.url}/api/v3/queue/status`, { 'x-api-key': KEY })).body).toEqual({ totalCount: 25, count: 25, unknownCount: 0, errors: false, warnings: false, unknownErrors: false, unknownWarnings: false });
  });

  it('serves health, disk space, wanted counts and history by downloadId', async () => {
    sim.setHealth([{ source: 'IndexerRssCheck', type: 'warning', message: 'No indexers available with RSS sync enabled', wikiUrl: 'https://wiki.servarr.com/sonarr/system#no-indexers-available-with-rss-sync-enabled' }]);
    sim.setWanted({ missing: 12, cutoff: 3 });
    const item = sim.addQueueItem({ title: 'Show.S01E01.1080p-GRP' });
    sim.addHistory({ downloadId: item.downloadId!, eventType: 'downloadFolderImported' });
    expect((await get(`${sim.url}/api/v3/health`, { 'x-api-key': KEY })).body).toEqual([expect.objectContaining({ source: 'IndexerRssCheck', type: 'warning' })]);
    expect((await get(`${sim.url}/api/v3/diskspace`, { 'x-api-key': KEY })).body).toEqual(expect.arrayContaining([expect.objectContaining({ path: '/tv', freeSpace: expect.any(Number), totalSpace: expect.any(Number) })]));
    expect((await get(`${sim.url}/api/v3/wanted/missing?pageSize=1`, { 'x-api-key': KEY })).body).toMatchObject({ totalRecords: 12, records: [expect.objectContaining({ hasFile: false })] });
    expect((await get(`${sim.url}/api/v3/wanted/cutoff?pageSize=1`, { 'x-api-key': KEY })).body).toMatchObject({ totalRecords: 3 });
    const history = (await get(`${sim.url}/api/v3/history?downloadId=${item.downloadId}`, { 'x-api-key': KEY })).body as { records: Record<string, unknown>[] };
    expect(history.records).toEqual([expect.objectContaining({ eventType: 'downloadFolderImported', downloadId: item.downloadId, sourceTitle: 'Show.S01E01.1080p-GRP' })]);
  });

  it('injects faults: status, slow, truncated JSON, cut body, HTML page', async () => {
    sim.setFaults({ status: 503 });
    expect((await get(`${sim.url}/api/v3/health`, { 'x-api-key': KEY })).status).toBe(503);
    sim.setFaults({ truncateJson: true });
    const cut = await get(`${sim.url}/api/v3/system/status`, { 'x-api-key': KEY });
    expect(cut.status).toBe(200);
    expect(() => JSON.parse(cut.text)).toThrow();
    sim.setFaults({ htmlPage: true });
    const html = await get(`${sim.url}/api/v3/system/status`, { 'x-api-key': KEY });
    expect(html).toMatchObject({ status: 200, type: 'text/html', text: HTML_ERROR_PAGE });
    sim.setFaults({ dropBody: true });
    await expect(fetch(`${sim.url}/api/v3/system/status`, { headers: { 'x-api-key': KEY } }).then((r) => r.text())).rejects.toThrow();
    sim.setFaults({ delayMs: 300 });
    const started = Date.now();
    await get(`${sim.url}/ping`);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
  });

  it('answers the web UI (HTML) outside /api, as a wrong URL base would get', async () => {
    const page = await get(`${sim.url}/sonarr/api/v3/queue`);
    expect(page.type).toBe('text/html');
  });
});

describe('Radarr and Prowlarr simulators', () => {
  it('Radarr points records at movies and drops wanted/* before v5.6', async () => {
    await using radarr = await startArrSimulator({ app: 'radarr', apiKey: KEY, legacyWanted: true });
    radarr.setWanted({ missing: 2 });
    radarr.addQueueItem({ title: 'Movie.2024.1080p-GRP' });
    const queue = (await get(`${radarr.url}/api/v3/queue?page=1&pageSize=50`, { 'x-api-key': KEY })).body as { records: Record<string, unknown>[] };
    expect(queue.records[0]).toMatchObject({ movieId: 1, title: 'Movie.2024.1080p-GRP' });
    expect(queue.records[0]).not.toHaveProperty('seriesId');
    expect((await get(`${radarr.url}/api/v3/wanted/missing`, { 'x-api-key': KEY })).status).toBe(404);
    const movies = (await get(`${radarr.url}/api/v3/movie`, { 'x-api-key': KEY })).body as { monitored: boolean; hasFile: boolean }[];
    expect(movies.filter((m) => m.monitored && !m.hasFile)).toHaveLength(2);
  });

  it('Prowlarr serves v1 indexers, their failure status and statistics', async () => {
    await using prowlarr = await startArrSimulator({ app: 'prowlarr', apiKey: KEY });
    prowlarr.setIndexers(
      [{ id: 1, name: 'Nyaa.si', enable: true, protocol: 'torrent', privacy: 'public', implementation: 'Cardigann', priority: 25 }, { id: 5, name: 'Broken', enable: true, protocol: 'torrent', privacy: 'public', implementation: 'Cardigann', priority: 25 }],
      [{ indexerId: 5, disabledTill: '2026-11-28T10:00:00Z', mostRecentFailure: '2026-11-27T10:00:00Z' }],
    );
    expect((await get(`${prowlarr.url}/api/v1/system/status`, { 'x-api-key': KEY })).body).toMatchObject({ appName: 'Prowlarr' });
    expect((await get(`${prowlarr.url}/api/v3/queue`, { 'x-api-key': KEY })).status).toBe(404);
    expect((await get(`${prowlarr.url}/api/v1/indexerstatus`, { 'x-api-key': KEY })).body).toEqual([expect.objectContaining({ indexerId: 5, disabledTill: '2026-11-28T10:00:00Z' })]);
    const stats = (await get(`${prowlarr.url}/api/v1/indexerstats`, { 'x-api-key': KEY })).body as { indexers: Record<string, unknown>[] };
    expect(stats.indexers[1]).toMatchObject({ indexerId: 5, indexerName: 'Broken', numberOfFailedQueries: 9, averageResponseTime: expect.any(Number) });
  });
});

describe('Jellyfin simulator', () => {
  let sim: JellyfinSimulator;
  beforeAll(async () => { sim = await startJellyfinSimulator({ apiKey: KEY }); });
  afterAll(() => sim.close());

  it('keeps public endpoints open and wants a MediaBrowser token for the rest', async () => {
    expect((await get(`${sim.url}/health`)).text).toBe('Healthy');
    expect((await get(`${sim.url}/System/Info/Public`)).body).toMatchObject({ ServerName: 'media-node', Version: '10.11.2', ProductName: 'Jellyfin Server', StartupWizardCompleted: true });
    expect((await get(`${sim.url}/Sessions`)).status).toBe(401);
    expect((await get(`${sim.url}/Sessions`, { authorization: 'MediaBrowser Token="nope"' })).status).toBe(401);
    expect((await get(`${sim.url}/Sessions`, { authorization: `MediaBrowser Client="x", Token="${KEY}"` })).status).toBe(200);
    expect((await get(`${sim.url}/Sessions`, { 'x-emby-token': KEY })).status).toBe(200);
    expect((await get(`${sim.url}/Items/Counts`, { authorization: `MediaBrowser Token="${KEY}"` })).body).toMatchObject({ MovieCount: expect.any(Number), EpisodeCount: expect.any(Number), ItemCount: expect.any(Number) });
  });

  it('lists sessions in PascalCase with NowPlayingItem, PlayState and TranscodingInfo', async () => {
    const { itemId } = sim.play({ deviceId: 'tv-1', item: { name: 'Dune', type: 'Movie' }, playMethod: 'Transcode' });
    sim.addSession({ deviceId: 'phone-2', userName: 'bob' });
    const sessions = (await get(`${sim.url}/Sessions?activeWithinSeconds=960`, { authorization: `MediaBrowser Token="${KEY}"` })).body as Record<string, unknown>[];
    const playing = sessions.find((s) => s['DeviceId'] === 'tv-1')!;
    expect(playing).toMatchObject({
      Id: expect.stringMatching(/^[0-9a-f]{32}$/), UserName: 'alice', Client: 'Jellyfin Android TV', DeviceName: 'Living Room TV',
      NowPlayingItem: { Id: itemId, Name: 'Dune', Type: 'Movie', RunTimeTicks: expect.any(Number) },
      PlayState: { PlayMethod: 'Transcode', IsPaused: false, PositionTicks: expect.any(Number) },
      TranscodingInfo: { VideoCodec: 'h264', IsVideoDirect: false, TranscodeReasons: ['VideoCodecNotSupported'] },
    });
    expect(sessions.find((s) => s['DeviceId'] === 'phone-2')).not.toHaveProperty('NowPlayingItem');
    sim.stop('tv-1');
    expect(sim.sessions().find((s) => s['DeviceId'] === 'tv-1')).not.toHaveProperty('NowPlayingItem');
  });
});

describe('Immich simulator', () => {
  let sim: ImmichSimulator;
  beforeAll(async () => { sim = await startImmichSimulator({ apiKey: KEY, userApiKey: 'u'.repeat(32) }); });
  afterAll(() => sim.close());

  it('serves ping and version openly, statistics to an admin key, storage to any key', async () => {
    expect((await get(`${sim.url}/api/server/ping`)).body).toEqual({ res: 'pong' });
    expect((await get(`${sim.url}/api/server/version`)).body).toEqual({ major: 1, minor: 135, patch: 3 });
    expect((await get(`${sim.url}/api/server/statistics`)).body).toMatchObject({ statusCode: 401, error: 'Unauthorized' });
    expect((await get(`${sim.url}/api/server/statistics`, { 'x-api-key': 'u'.repeat(32) })).status).toBe(403);
    const stats = (await get(`${sim.url}/api/server/statistics`, { 'x-api-key': KEY })).body as Record<string, unknown>;
    expect(stats).toMatchObject({ photos: 12_282, videos: 576, usage: 113_500_000_000, usageByUser: [expect.objectContaining({ userName: 'alice', quotaSizeInBytes: null }), expect.anything()] });
    const storage = (await get(`${sim.url}/api/server/storage`, { 'x-api-key': 'u'.repeat(32) })).body as Record<string, unknown>;
    expect(storage).toMatchObject({ diskSize: '3.6 TiB', diskSizeRaw: 3_998_614_495_232, diskUsagePercentage: expect.any(Number) });
  });
});

describe('webhook payloads', () => {
  it('follow the senders\' key spelling', () => {
    expect(arrGrabPayload('sonarr', { downloadId: 'ABC' })).toMatchObject({ eventType: 'Grab', series: { title: 'The Expanse' }, episodes: [expect.anything()], release: { releaseTitle: expect.any(String), indexer: expect.any(String) }, downloadId: 'ABC' });
    expect(arrDownloadPayload('radarr', { downloadId: 'ABC' })).toMatchObject({ eventType: 'Download', movie: { year: 2017 }, movieFile: { relativePath: expect.any(String), path: expect.any(String) }, isUpgrade: false });
    expect(jellyfinPlaybackStartPayload({ deviceId: 'd', itemId: '0123456789abcdef0123456789abcdef' })).toMatchObject({ NotificationType: 'PlaybackStart', ItemId: '01234567-89ab-cdef-0123-456789abcdef', DeviceId: 'd', PlayMethod: 'DirectPlay' });
  });
});

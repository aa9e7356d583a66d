import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MediaStatusSchema, Streams, ensureStreams, eventValidator, validator, type MediaStatus } from '@homelab/bus';
import {
  arrDownloadPayload, arrGrabPayload, jellyfinPlaybackStartPayload, jellyfinPlaybackStopPayload, startArrSimulator, startImmichSimulator, startJellyfinSimulator,
  type ArrSimulator,
} from '@homelab/simulators';
import { connectAs, startNatsServer, startServiceProcess, type ServiceProcess, type TestNatsServer } from '@homelab/testing';
import { MediaEvents, sleep, writeMediaConfig, type TestService } from './testkit.ts';

// The media service as a process, on a real nats-server with the project's nats.conf, against the
// simulators: what reaches the MEDIA stream, what `media.status` answers, what the webhooks do.

const SONARR_KEY = 'sonarr-key-' + 'a'.repeat(21);
const SECRETS = [SONARR_KEY];

let nats: TestNatsServer;
let dir: string;
beforeAll(async () => {
  nats = await startNatsServer();
  dir = mkdtempSync(join(tmpdir(), 'media-e2e-'));
  // The stream exists before the first reader opens it (the service would create it at start too).
  await using nc = await connectAs(nats, 'media');
  await ensureStreams(nc, { streams: Streams.filter((s) => s.name === 'MEDIA') });
});
afterAll(async () => {
  await nats?.[Symbol.asyncDispose]();
  rmSync(dir, { recursive: true, force: true });
});

function start(config: string): Promise<ServiceProcess> {
  return startServiceProcess('media', { nats, env: { HOMELAB_CONFIG: config } });
}

function expectNoSecrets(text: string, secrets: string[]): void {
  for (const s of secrets) expect(text, `a secret leaked: ${s.slice(0, 6)}…`).not.toContain(s);
}

function expectValidEvents(events: MediaEvents): void {
  for (const e of events.events) {
    const check = eventValidator(e.subject);
    expect(check, e.subject).toBeDefined();
    expect(() => check!.parse(e.data), `${e.subject}: ${JSON.stringify(e.data).slice(0, 300)}`).not.toThrow();
  }
}

describe('a download through its phases, across restarts of the media service', () => {
  let sonarr: ArrSimulator;
  beforeAll(async () => { sonarr = await startArrSimulator({ app: 'sonarr', apiKey: SONARR_KEY }); });
  afterAll(() => sonarr.close());

  it('yields grabbed, completed, imported: each once', { timeout: 90_000 }, async () => {
    const sub = mkdtempSync(join(dir, 'dl-'));
    const config = writeMediaConfig(sub, {
      natsUrl: nats.url, services: [{ name: 'sonarr', kind: 'sonarr', port: sonarr.port, apiKey: SONARR_KEY }],
      media: { webhooks: { host: '127.0.0.1', port: 0, secret: 'the-webhook-secret-123' } },
    });
    await using nc = await connectAs(nats, 'scripts');
    const events = await MediaEvents.open(nc);
    let media = await start(config);
    await media.waitForLog((l) => l['target'] === 'sonarr' && /baseline/.test(String(l['msg'])));

    const item = sonarr.addQueueItem({ title: 'The.Expanse.S01E01.1080p.BluRay-GRP' });
    const id = item.downloadId!.toLowerCase();
    await events.waitFor((e) => e.subject === 'media.download.grabbed' && e.data['downloadId'] === id, 10_000, 'grabbed');
    await media.stop();

    sonarr.updateQueueItem(item.downloadId!, { status: 'completed', sizeleft: 0, trackedDownloadState: 'importPending' });
    media = await start(config);
    await events.waitFor((e) => e.subject === 'media.download.completed' && e.data['downloadId'] === id, 10_000, 'completed');
    await media.stop();

    sonarr.updateQueueItem(item.downloadId!, { trackedDownloadState: 'imported' });
    media = await start(config);
    await events.waitFor((e) => e.subject === 'media.download.imported' && e.data['downloadId'] === id, 10_000, 'imported');
    const port = Number((await media.waitForLog((l) => l['msg'] === 'webhook receiver listening'))['port']);
    // Sonarr removes the item and sends its Download webhook; neither may repeat an event.
    sonarr.removeQueueItem(item.downloadId!);
    sonarr.addHistory({ downloadId: item.downloadId!, eventType: 'downloadFolderImported' });
    const hook = await fetch(`http://127.0.0.1:${port}/webhooks/sonarr`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from('sonarr:the-webhook-secret-123').toString('base64')}` },
      body: JSON.stringify(arrDownloadPayload('sonarr', { downloadId: item.downloadId! })),
    });
    expect(hook.status).toBe(200);
    await events.waitFor((e) => e.subject === 'media.webhook.sonarr' && e.data['eventType'] === 'Download');
    await sleep(1000); // several polls
    await media.stop();
    media = await start(config);
    await sleep(800);
    expect(await media.stop()).toBe(0); // SIGTERM: pollers stopped, webhook server closed, NATS drained

    const mine = events.events.filter((e) => e.subject.startsWith('media.download.') && e.data['downloadId'] === id);
    expect(mine.map((e) => e.subject)).toEqual(['media.download.grabbed', 'media.download.completed', 'media.download.imported']);
    expect(mine[0]!.data).toMatchObject({ source: 'sonarr', kind: 'sonarr', via: 'poll', title: 'The.Expanse.S01E01.1080p.BluRay-GRP', downloadClient: 'qBittorrent', quality: 'Bluray-1080p' });
    expect(events.of('media.queue').length).toBeGreaterThan(0);
    expectValidEvents(events);
    expectNoSecrets(JSON.stringify(events.events) + JSON.stringify(media.logs), [...SECRETS, 'the-webhook-secret-123']);
    await events.close();
  });
});

describe('faults, isolation, storage, status and webhooks', () => {
  const keys = { radarr: 'radarr-key-' + 'b'.repeat(21), prowlarr: 'prowlarr-key-' + 'c'.repeat(19), jellyfin: 'jellyfin-key-' + 'd'.repeat(19), immich: 'immich-key-' + 'e'.repeat(21), qb: 'qb-password-never-logged' };
  const WEBHOOK_SECRET = 'media-webhook-secret-4567';

  it('reports every fault as media.service.error with its reason, keeps the others polling, and recovers', { timeout: 90_000 }, async () => {
    await using sonarr = await startArrSimulator({ app: 'sonarr', apiKey: SONARR_KEY });
    await using radarr = await startArrSimulator({ app: 'radarr', apiKey: keys.radarr });
    await using prowlarr = await startArrSimulator({ app: 'prowlarr', apiKey: keys.prowlarr });
    await using jellyfin = await startJellyfinSimulator({ apiKey: keys.jellyfin });
    await using immich = await startImmichSimulator({ apiKey: keys.immich });
    const sub = mkdtempSync(join(dir, 'faults-'));
    const dead = await startImmichSimulator({ apiKey: 'x' });
    const deadPort = dead.port;
    await dead.close(); // a service that is down: its port refuses connections
    const services: TestService[] = [
      { name: 'sonarr', kind: 'sonarr', port: sonarr.port, apiKey: 'wrong-key-' + 'z'.repeat(22) },
      { name: 'radarr', kind: 'radarr', port: radarr.port, apiKey: keys.radarr },
      { name: 'prowlarr', kind: 'prowlarr', port: prowlarr.port, apiKey: keys.prowlarr },
      { name: 'jellyfin', kind: 'jellyfin', port: jellyfin.port, apiKey: keys.jellyfin },
      { name: 'immich', kind: 'immich', port: immich.port, apiKey: keys.immich },
      { name: 'qbittorrent', kind: 'qbittorrent', port: deadPort, username: 'admin', password: keys.qb },
    ];
    const config = writeMediaConfig(sub, {
      natsUrl: nats.url, services,
      media: {
        paths: [sub, join(sub, 'not-mounted')], timeoutMs: 400, lowSpace: { freePercent: 99.999, hysteresisPercent: 0 },
        webhooks: { host: '127.0.0.1', port: 0, secret: WEBHOOK_SECRET },
      },
    });
    radarr.setFaults({ delayMs: 3000 });
    prowlarr.setFaults({ truncateJson: true });
    immich.setFaults({ htmlPage: true });
    await using nc = await connectAs(nats, 'scripts');
    const events = await MediaEvents.open(nc);
    const media = await start(config);
    const error = (source: string) => events.waitFor((e) => e.subject === 'media.service.error' && e.data['source'] === source, 10_000, `error of ${source}`);
    expect((await error('sonarr')).data).toMatchObject({ kind: 'sonarr', reason: 'auth', status: 401 });
    expect((await error('radarr')).data).toMatchObject({ reason: 'timeout' });
    expect((await error('prowlarr')).data).toMatchObject({ reason: 'invalid_json' });
    expect((await error('immich')).data).toMatchObject({ reason: 'not_json' });
    expect((await error('qbittorrent')).data).toMatchObject({ reason: 'unreachable' });
    expect((await error('storage')).data).toMatchObject({ kind: 'storage', reason: 'missing_path', message: expect.stringContaining('not-mounted: missing') });
    expect((await events.waitFor((e) => e.subject === 'media.storage.low')).data).toMatchObject({ path: sub, state: 'low', thresholdPercent: 99.999 });

    // Jellyfin is polled at its interval while radarr hangs for 3 s on every request.
    const before = jellyfin.requests.length;
    await sleep(1500);
    expect(jellyfin.requests.length - before).toBeGreaterThanOrEqual(9); // 3 requests a poll, a poll every ~200 ms
    const { itemId } = jellyfin.play({ deviceId: 'tv-1', userName: 'alice', item: { name: 'Dune: Part Two', type: 'Movie' }, playMethod: 'Transcode' });
    expect((await events.waitFor((e) => e.subject === 'media.stream.started')).data).toMatchObject({ key: `tv-1:${itemId}`, user: 'alice', playMethod: 'Transcode', via: 'poll', transcoding: expect.any(Object) });

    // media.status: the latest of everything.
    const reply = await nc.request('media.status', undefined, { timeout: 5000 });
    const status = reply.json<MediaStatus>();
    expect(validator(MediaStatusSchema).check(status)).toBe(true);
    expect(status.targets.map((t) => [t.name, t.ok, t.error?.reason])).toEqual([
      ['sonarr', false, 'auth'], ['radarr', false, 'timeout'], ['prowlarr', false, 'invalid_json'], ['jellyfin', true, undefined], ['immich', false, 'not_json'], ['qbittorrent', false, 'unreachable'],
    ]);
    expect(status.targets[5]!.url).toBe(`http://127.0.0.1:${deadPort}`);
    expect(status.sessions[0]!.streams[0]).toMatchObject({ item: { name: 'Dune: Part Two' } });
    expect(status.storage!.paths).toEqual([expect.objectContaining({ path: sub, ok: true, low: true }), expect.objectContaining({ ok: false, error: 'missing' })]);
    expect(status.webhooks).toMatchObject({ enabled: true, port: expect.any(Number) });

    // Each error is announced once while it lasts.
    expect(events.of('media.service.error').filter((e) => e.data['source'] === 'prowlarr')).toHaveLength(1);

    // Repairs: each recovers, once.
    prowlarr.setFaults({});
    immich.setFaults({});
    radarr.setFaults({});
    for (const source of ['prowlarr', 'immich', 'radarr']) {
      const rec = await events.waitFor((e) => e.subject === 'media.service.recovered' && e.data['source'] === source, 10_000, `recovery of ${source}`);
      expect(rec.data).toMatchObject({ lastReason: expect.any(String), downMs: expect.any(Number) });
    }
    expect((await events.waitFor((e) => e.subject === 'media.library' && e.data['kind'] === 'immich')).data).toMatchObject({ photos: 12_282 });
    expect((await events.waitFor((e) => e.subject === 'media.library' && e.data['kind'] === 'prowlarr')).data).toMatchObject({ indexers: { total: 2 } });
    jellyfin.stop('tv-1');
    expect((await events.waitFor((e) => e.subject === 'media.stream.stopped')).data).toMatchObject({ key: `tv-1:${itemId}`, durationMs: expect.any(Number) });

    // Webhooks: a bad secret or bad JSON publishes nothing; good ones land as media.webhook.* and transitions.
    const port = status.webhooks.port!;
    const url = (source: string) => `http://127.0.0.1:${port}/webhooks/${source}`;
    const grab = JSON.stringify(arrGrabPayload('radarr', { downloadId: 'F'.repeat(40), title: 'Dune.Part.Two.2024.2160p-GRP' }));
    const seen = events.events.length;
    const refused = JSON.stringify(arrGrabPayload('radarr', { downloadId: 'E'.repeat(40) }));
    expect((await fetch(url('radarr'), { method: 'POST', body: refused, headers: { 'content-type': 'application/json', 'x-homelab-secret': 'wrong' } })).status).toBe(401);
    expect((await fetch(url('radarr'), { method: 'POST', body: '{"eventType":"Grab",', headers: { 'content-type': 'application/json', 'x-homelab-secret': WEBHOOK_SECRET } })).status).toBe(400);
    expect((await fetch(url('radarr'), { method: 'POST', body: grab, headers: { 'content-type': 'application/json', 'x-homelab-secret': WEBHOOK_SECRET } })).status).toBe(200);
    expect((await events.waitFor((e) => e.subject === 'media.download.grabbed' && e.data['via'] === 'webhook')).data).toMatchObject({ downloadId: 'f'.repeat(40), source: 'radarr', movie: { title: 'Blade Runner 2049' } });
    // Nothing from the refused ones: the only webhook event since is the good Grab, the only download event its grab.
    const since = events.events.slice(seen).filter((e) => e.subject.startsWith('media.webhook.') || e.subject.startsWith('media.download.'));
    expect(since.map((e) => [e.subject, e.data['eventType'] ?? e.data['phase']])).toEqual([['media.webhook.radarr', 'Grab'], ['media.download.grabbed', 'grabbed']]);
    const play = { deviceId: 'phone-7', itemId: '00112233445566778899aabbccddeeff', name: 'Arrival' };
    const hook = (body: unknown) => fetch(url('jellyfin'), { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'text/plain', 'x-homelab-secret': WEBHOOK_SECRET } });
    expect((await hook(jellyfinPlaybackStartPayload(play))).status).toBe(200);
    expect((await events.waitFor((e) => e.subject === 'media.stream.started' && e.data['via'] === 'webhook')).data).toMatchObject({ key: `phone-7:${play.itemId}`, item: { name: 'Arrival' } });
    expect((await hook(jellyfinPlaybackStopPayload(play))).status).toBe(200);
    await events.waitFor((e) => e.subject === 'media.stream.stopped' && e.data['key'] === `phone-7:${play.itemId}`);
    expect((await hook({ NotificationType: 'SomeFuturePluginEvent', ServerName: 'media-node' })).status).toBe(200);
    await events.waitFor((e) => e.subject === 'media.webhook.jellyfin' && e.data['eventType'] === 'SomeFuturePluginEvent');

    await media.stop();
    expect(media.logs.some((l) => l['msg'] === 'webhook refused: wrong or missing secret')).toBe(true);
    expectValidEvents(events);
    expectNoSecrets(JSON.stringify(events.events) + JSON.stringify(media.logs) + JSON.stringify(status) + media.stderr(), [...Object.values(keys), SONARR_KEY, WEBHOOK_SECRET]);
    await events.close();
  });
});

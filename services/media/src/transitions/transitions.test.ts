import { describe, expect, it } from 'vitest';
import { Subjects, validator, type EventKey, type EventPayload, type MediaStream } from '@homelab/bus';
import { createLogger } from '@homelab/logging';
import { MediaError } from '../errors.ts';
import { MemoryStateStore } from '../state.ts';
import type { DownloadObservation, DownloadState } from '../targets/types.ts';
import { ServiceAlerts, StorageAlerts } from './alerts.ts';
import { DownloadTracker, impliedPhases } from './downloads.ts';
import type { EventSink } from './sink.ts';
import { StreamTracker } from './streams.ts';

// The trackers with a store in memory and a sink that keeps what it was given: which transitions a
// series of observations yields, and that a new tracker on the same store (a restart) repeats none.

interface Published { key: EventKey; payload: Record<string, unknown>; msgId: string }

class ListSink implements EventSink {
  readonly events: Published[] = [];
  readonly #ids = new Set<string>();
  failNext = 0;
  async publish<K extends EventKey>(key: K, payload: EventPayload<K>, msgId: string): Promise<void> {
    if (this.failNext > 0) { this.failNext--; throw new Error('bus down'); }
    const check = validator(Subjects[key].schema!);
    check.parse(payload);
    if (this.#ids.has(msgId)) return; // JetStream's duplicate window
    this.#ids.add(msgId);
    this.events.push({ key, payload: payload as Record<string, unknown>, msgId });
  }
  keys(): string[] { return this.events.map((e) => e.key); }
}

const log = createLogger({ service: 'test', level: 'silent' });
const sonarr = { name: 'sonarr', kind: 'sonarr' as const };
const qbit = { name: 'qbittorrent', kind: 'qbittorrent' as const };
const HASH = 'ABCDEF0123456789ABCDEF0123456789ABCDEF01';

function obs(state: DownloadState, id = HASH, title = 'Show.S01E01-GRP'): DownloadObservation {
  return { id: id.toLowerCase(), rawId: id, state, info: { title } };
}

function setup(store = new MemoryStateStore(), sink = new ListSink()) {
  return { store, sink, downloads: new DownloadTracker({ store, sink, log }), streams: new StreamTracker({ store, sink, log }) };
}

describe('impliedPhases', () => {
  it('announces every phase passed, in order', () => {
    expect(impliedPhases(undefined, 'downloading')).toEqual(['grabbed']);
    expect(impliedPhases(undefined, 'imported')).toEqual(['grabbed', 'completed', 'imported']);
    expect(impliedPhases('downloading', 'downloading')).toEqual([]);
    expect(impliedPhases('downloading', 'imported')).toEqual(['completed', 'imported']);
    expect(impliedPhases('completed', 'downloading')).toEqual([]);
    expect(impliedPhases('downloading', 'failed')).toEqual(['failed']);
    expect(impliedPhases(undefined, 'failed')).toEqual(['grabbed', 'failed']);
    expect(impliedPhases('failed', 'downloading')).toEqual([]);
    expect(impliedPhases('failed', 'completed')).toEqual(['completed']);
  });
});

describe('DownloadTracker', () => {
  it('records a baseline first, then downloading → completed → imported yields each event once, across restarts', async () => {
    const store = new MemoryStateStore();
    const sink = new ListSink();
    let t = setup(store, sink);
    await t.downloads.observe(sonarr, [obs('downloading', 'OLD0000000000000000000000000000000000000')], { complete: true });
    expect(sink.events).toEqual([]);
    await t.downloads.observe(sonarr, [obs('downloading'), obs('downloading', 'OLD0000000000000000000000000000000000000')], { complete: true });
    expect(sink.keys()).toEqual(['mediaDownloadGrabbed']);
    await t.downloads.observe(sonarr, [obs('downloading')], { complete: false });
    t = setup(store, sink); // restart
    await t.downloads.observe(sonarr, [obs('completed')], { complete: true });
    await t.downloads.observe(sonarr, [obs('completed')], { complete: true });
    t = setup(store, sink); // restart
    await t.downloads.observe(sonarr, [obs('imported')], { complete: true });
    await t.downloads.observe(sonarr, [], { complete: true, resolveGone: async () => 'imported' });
    expect(sink.keys()).toEqual(['mediaDownloadGrabbed', 'mediaDownloadCompleted', 'mediaDownloadImported']);
    expect(sink.events[1]!.payload).toMatchObject({ downloadId: HASH.toLowerCase(), phase: 'completed', source: 'sonarr', kind: 'sonarr', via: 'poll', title: 'Show.S01E01-GRP' });
    expect(new Set(sink.events.map((e) => e.msgId)).size).toBe(3);
    expect(sink.events[0]!.msgId).toMatch(/^download\.grabbed:abcdef0123456789abcdef0123456789abcdef01:\d+$/);
  });

  it('asks the history about a download that left the queue: imported, failed, or just removed', async () => {
    const t = setup();
    await t.downloads.observe(sonarr, [], { complete: true });
    const a = 'A'.repeat(40);
    const b = 'B'.repeat(40);
    const c = 'C'.repeat(40);
    await t.downloads.observe(sonarr, [obs('completed', a), obs('downloading', b), obs('downloading', c)], { complete: true });
    const outcomes: Record<string, 'imported' | 'failed' | 'removed'> = { [a]: 'imported', [b]: 'failed', [c]: 'removed' };
    const asked: string[] = [];
    await t.downloads.observe(sonarr, [], { complete: true, resolveGone: async (raw) => { asked.push(raw); return outcomes[raw]!; } });
    expect(asked.sort()).toEqual([a, b, c]);
    const byId = (id: string) => t.sink.events.filter((e) => e.payload['downloadId'] === id.toLowerCase()).map((e) => e.payload['phase']);
    expect(byId(a)).toEqual(['grabbed', 'completed', 'imported']);
    expect(byId(b)).toEqual(['grabbed', 'failed']);
    expect(byId(c)).toEqual(['grabbed']);
  });

  it('retries a history lookup that failed, and keeps items of a truncated queue', async () => {
    const t = setup();
    await t.downloads.observe(sonarr, [obs('completed')], { complete: true });
    let calls = 0;
    const flaky = async () => { calls++; if (calls === 1) throw new MediaError('timeout', 'slow'); return 'imported' as const; };
    await t.downloads.observe(sonarr, [], { complete: false, resolveGone: flaky });
    expect(calls).toBe(0);
    await t.downloads.observe(sonarr, [], { complete: true, resolveGone: flaky });
    expect(t.sink.keys()).toEqual([]);
    await t.downloads.observe(sonarr, [], { complete: true, resolveGone: flaky });
    expect(t.sink.keys()).toEqual(['mediaDownloadImported']);
  });

  it('makes one series of events from Sonarr\'s queue, qBittorrent and the webhooks', async () => {
    const t = setup();
    await t.downloads.observe(sonarr, [], { complete: true });
    await t.downloads.observe(qbit, [], { complete: true });
    await t.downloads.webhook(sonarr, HASH, 'grabbed', { title: 'Show.S01E01-GRP', indexer: 'Nyaa' });
    await t.downloads.observe(qbit, [obs('downloading', HASH.toLowerCase())], { complete: true });
    await t.downloads.observe(sonarr, [obs('downloading')], { complete: true });
    await t.downloads.observe(qbit, [obs('completed', HASH.toLowerCase())], { complete: true });
    await t.downloads.observe(sonarr, [obs('completed')], { complete: true });
    await t.downloads.webhook(sonarr, HASH, 'imported', { title: 'Show.S01E01-GRP', path: '/tv/Show/S01E01.mkv' });
    await t.downloads.observe(sonarr, [], { complete: true, resolveGone: async () => 'imported' });
    await t.downloads.observe(qbit, [obs('completed', HASH.toLowerCase())], { complete: true });
    expect(t.sink.events.map((e) => [e.key, e.payload['source'], e.payload['via']])).toEqual([
      ['mediaDownloadGrabbed', 'sonarr', 'webhook'],
      ['mediaDownloadCompleted', 'qbittorrent', 'poll'],
      ['mediaDownloadImported', 'sonarr', 'webhook'],
    ]);
    expect(t.sink.events[2]!.payload).toMatchObject({ path: '/tv/Show/S01E01.mkv' });
  });

  it('announces an import webhook for a download never seen as imported only', async () => {
    const t = setup();
    await t.downloads.webhook(sonarr, 'SABnzbd_nzo_abc123', 'imported', { title: 'Manual import' });
    expect(t.sink.events.map((e) => e.payload['phase'])).toEqual(['imported']);
    expect(t.sink.events[0]!.payload['downloadId']).toBe('SABnzbd_nzo_abc123');
  });

  it('replays the same msgId when the bus failed mid-way, so JetStream stores it once', async () => {
    const t = setup();
    await t.downloads.observe(sonarr, [], { complete: true });
    t.sink.failNext = 1;
    await expect(t.downloads.observe(sonarr, [obs('downloading')], { complete: true })).rejects.toThrow('bus down');
    await t.downloads.observe(sonarr, [obs('downloading')], { complete: true });
    expect(t.sink.keys()).toEqual(['mediaDownloadGrabbed']);
  });
});

function stream(deviceId: string, itemId: string, extra: Partial<MediaStream> = {}): MediaStream {
  return { key: `${deviceId}:${itemId}`, deviceId, user: 'alice', item: { id: itemId, name: 'Dune', type: 'Movie' }, playMethod: 'DirectPlay', ...extra };
}

describe('StreamTracker', () => {
  const jf = { name: 'jellyfin', kind: 'jellyfin' as const };

  it('announces a start when a stream appears and a stop when it goes, once across restarts', async () => {
    const store = new MemoryStateStore();
    const sink = new ListSink();
    let t = setup(store, sink);
    await t.streams.observe(jf, [stream('tv', 'i1')], 30_000);
    await t.streams.observe(jf, [stream('tv', 'i1', { positionTicks: 5e9 })], 30_000);
    t = setup(store, sink);
    await t.streams.observe(jf, [stream('tv', 'i1', { positionTicks: 6e9 })], 30_000);
    await t.streams.observe(jf, [stream('tv', 'i2')], 30_000); // next item on the same device
    t = setup(store, sink);
    await t.streams.observe(jf, [], 30_000);
    expect(sink.events.map((e) => [e.key, e.payload['key']])).toEqual([
      ['mediaStreamStarted', 'tv:i1'], ['mediaStreamStopped', 'tv:i1'], ['mediaStreamStarted', 'tv:i2'], ['mediaStreamStopped', 'tv:i2'],
    ]);
    expect(sink.events[1]!.payload).toMatchObject({ startedAt: sink.events[0]!.payload['startedAt'], durationMs: expect.any(Number), positionTicks: 6e9 });
  });

  it('agrees with the webhooks: no double start, and a stop outweighs a lagging poll', async () => {
    const t = setup();
    await t.streams.webhook(jf, 'started', stream('tv', 'i1'));
    await t.streams.observe(jf, [stream('tv', 'i1', { sessionId: 's1', playMethod: 'Transcode' })], 30_000);
    await t.streams.webhook(jf, 'stopped', stream('tv', 'i1', { positionTicks: 9e9 }));
    await t.streams.observe(jf, [stream('tv', 'i1')], 30_000);
    await t.streams.observe(jf, [], 30_000);
    expect(t.sink.events.map((e) => [e.key, e.payload['via']])).toEqual([['mediaStreamStarted', 'webhook'], ['mediaStreamStopped', 'webhook']]);
    expect(t.sink.events[1]!.payload).toMatchObject({ sessionId: 's1', positionTicks: 9e9 });
  });
});

describe('StorageAlerts', () => {
  const t = { freePercent: 10, hysteresisPercent: 2 };
  const usage = (path: string, freePercent: number) => ({ path, ok: true, totalBytes: 1000, usedBytes: 1000 - freePercent * 10, freeBytes: freePercent * 10, usedPercent: 100 - freePercent, freePercent, low: false });

  it('fires once when a path goes low and once when it recovers past the hysteresis', async () => {
    const store = new MemoryStateStore();
    const sink = new ListSink();
    let alerts = new StorageAlerts({ store, sink, log });
    for (const free of [50, 20, 9, 8, 11, 9]) await alerts.observe([usage('/mnt/media', free)], t);
    alerts = new StorageAlerts({ store, sink, log });
    expect((await alerts.observe([usage('/mnt/media', 9)], t))[0]!.low).toBe(true);
    await alerts.observe([{ path: '/mnt/media', ok: false, error: 'missing', low: false }], t);
    for (const free of [11.5, 30]) await alerts.observe([usage('/mnt/media', free)], t);
    expect(sink.events.map((e) => [e.key, e.payload['freePercent']])).toEqual([['mediaStorageLow', 9], ['mediaStorageRecovered', 30]]);
  });

  it('fires at start for a path already low, and honours a byte threshold', async () => {
    const sink = new ListSink();
    const alerts = new StorageAlerts({ store: new MemoryStateStore(), sink, log });
    await alerts.observe([usage('/a', 5), usage('/b', 50)], { ...t, freeBytes: 600 });
    expect(sink.events.map((e) => e.payload['path'])).toEqual(['/a', '/b']);
    expect(sink.events[1]!.payload).toMatchObject({ state: 'low', thresholdBytes: 600 });
  });
});

describe('ServiceAlerts', () => {
  it('announces an error once per reason and the recovery once', async () => {
    const store = new MemoryStateStore();
    const sink = new ListSink();
    let alerts = new ServiceAlerts({ store, sink, log });
    await alerts.ok(sonarr);
    await alerts.error(sonarr, new MediaError('unreachable', '/api/v3/health: ECONNREFUSED'));
    await alerts.error(sonarr, new MediaError('unreachable', '/api/v3/health: ECONNREFUSED'));
    alerts = new ServiceAlerts({ store, sink, log });
    await alerts.error(sonarr, new MediaError('unreachable', 'again'));
    await alerts.error(sonarr, new MediaError('auth', '/api/v3/health: HTTP 401', { status: 401, endpoint: '/api/v3/health' }));
    await alerts.ok(sonarr);
    await alerts.ok(sonarr);
    expect(sink.events.map((e) => [e.key, e.payload['reason'] ?? e.payload['lastReason']])).toEqual([
      ['mediaServiceError', 'unreachable'], ['mediaServiceError', 'auth'], ['mediaServiceRecovered', 'auth'],
    ]);
    expect(sink.events[1]!.payload).toMatchObject({ status: 401, endpoint: '/api/v3/health', since: sink.events[0]!.payload['since'] });
  });
});

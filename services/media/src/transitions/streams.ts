import type { MediaStream, MediaStreamEvent } from '@homelab/bus';
import type { Logger } from '@homelab/logging';
import { Doc, KeyedMutex, type StateStore } from '../state.ts';
import { systemClock, type Clock, type EventSink, type TargetRef } from './sink.ts';

/*
 * Streams: a device playing an item (`key` = `<deviceId>:<itemId>`). Started when it first appears
 * (in `/Sessions` or a PlaybackStart webhook), stopped when it disappears (or PlaybackStop). Unlike
 * downloads there is no baseline: what plays at start is news. The active set lives in KV
 * (`targets.<name>.streams`), so a restart neither repeats a start nor loses a stop.
 */

interface ActiveStream {
  stream: MediaStream;
  startedAt: number;
  /** Names the msgIds of this playback. */
  gen: number;
  /** The start was published (false only between the intent and the publish). */
  announced: boolean;
  via: 'poll' | 'webhook';
}

interface StreamsDoc {
  v: 1;
  active: Record<string, ActiveStream>;
  /** Keys stopped by a webhook recently: a lagging poll that still lists them does not restart them. */
  stoppedAt: Record<string, number>;
}

const FORGET_STOPS_MS = 24 * 3600_000;

export interface StreamTrackerOptions {
  store: StateStore;
  sink: EventSink;
  log: Logger;
  clock?: Clock;
}

export class StreamTracker {
  readonly #store: StateStore;
  readonly #sink: EventSink;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #mutex = new KeyedMutex();
  readonly #docs = new Map<string, Doc<StreamsDoc>>();
  /** The latest poll's view of each active stream (position, pause), kept in memory only: it changes every poll. */
  readonly #latest = new Map<string, MediaStream>();

  constructor(options: StreamTrackerOptions) {
    this.#store = options.store;
    this.#sink = options.sink;
    this.#log = options.log;
    this.#clock = options.clock ?? systemClock;
  }

  /** The streams a poll of Jellyfin found. `graceMs`: how long a webhook's stop outweighs a poll still listing the stream. */
  observe(target: TargetRef, streams: MediaStream[], graceMs: number): Promise<void> {
    return this.#mutex.run(target.name, async () => {
      const { doc, state } = await this.#load(target.name);
      const now = this.#clock();
      const current = new Map(streams.map((s) => [s.key, s]));
      let changed = false;
      // Stops first: a device that moved to the next episode stopped one stream before it started the other.
      for (const key of Object.keys(state.active)) {
        if (current.has(key)) continue;
        await this.#stop(target, doc, state, key, 'poll');
        changed = true;
      }
      for (const [key, stream] of current) {
        const entry = state.active[key];
        this.#latest.set(`${target.name}|${key}`, stream);
        if (entry) {
          if (!entry.announced) { await this.#publishStart(target, doc, state, key); changed = true; }
          continue;
        }
        const stoppedAt = state.stoppedAt[key];
        if (stoppedAt !== undefined && now - stoppedAt < graceMs) continue;
        await this.#start(target, doc, state, stream, 'poll');
        changed = true;
      }
      for (const [key, at] of Object.entries(state.stoppedAt)) if (now - at > FORGET_STOPS_MS) { delete state.stoppedAt[key]; changed = true; }
      if (changed) await doc.save(state);
    });
  }

  /** A PlaybackStart / PlaybackStop webhook from Jellyfin. */
  webhook(target: TargetRef, what: 'started' | 'stopped', stream: MediaStream): Promise<void> {
    return this.#mutex.run(target.name, async () => {
      const { doc, state } = await this.#load(target.name);
      if (what === 'started') {
        delete state.stoppedAt[stream.key];
        if (state.active[stream.key]) return;
        await this.#start(target, doc, state, stream, 'webhook');
        return;
      }
      if (state.active[stream.key]) {
        const known = this.#latest.get(`${target.name}|${stream.key}`) ?? state.active[stream.key]!.stream;
        // The webhook knows the final position; the poll knew the session and the transcoding.
        state.active[stream.key]!.stream = { ...known, ...stream, item: { ...known.item, ...stream.item } };
        await this.#stop(target, doc, state, stream.key, 'webhook');
        return;
      }
      // A stop for a playback never seen starting (shorter than a poll, and no start webhook): announce the stop alone.
      const now = this.#clock();
      if (state.stoppedAt[stream.key] !== undefined && now - state.stoppedAt[stream.key]! < 60_000) return;
      const startedAt = now - Math.round((stream.positionTicks ?? 0) / 10_000);
      await this.#sink.publish('mediaStreamStopped', this.#event(target, stream, 'webhook', startedAt, now), `stream.stopped:${target.name}:${stream.key}:${startedAt}`);
      state.stoppedAt[stream.key] = now;
      await doc.save(state);
    });
  }

  async #load(name: string): Promise<{ doc: Doc<StreamsDoc>; state: StreamsDoc }> {
    let doc = this.#docs.get(name);
    if (!doc) { doc = new Doc(this.#store, `targets.${name}.streams`); this.#docs.set(name, doc); }
    return { doc, state: (await doc.load()) ?? { v: 1, active: {}, stoppedAt: {} } };
  }

  #event(target: TargetRef, stream: MediaStream, via: 'poll' | 'webhook', startedAt: number, stoppedAt?: number): MediaStreamEvent {
    return {
      ...stream, source: target.name, via, at: new Date(this.#clock()).toISOString(), startedAt: new Date(startedAt).toISOString(),
      ...(stoppedAt !== undefined && { stoppedAt: new Date(stoppedAt).toISOString(), durationMs: Math.max(0, stoppedAt - startedAt) }),
    };
  }

  async #start(target: TargetRef, doc: Doc<StreamsDoc>, state: StreamsDoc, stream: MediaStream, via: 'poll' | 'webhook'): Promise<void> {
    const now = this.#clock();
    state.active[stream.key] = { stream, startedAt: now, gen: now, announced: false, via };
    await doc.save(state); // the intent: a crash before the publish replays the same msgId
    await this.#publishStart(target, doc, state, stream.key);
  }

  async #publishStart(target: TargetRef, doc: Doc<StreamsDoc>, state: StreamsDoc, key: string): Promise<void> {
    const entry = state.active[key]!;
    await this.#sink.publish('mediaStreamStarted', this.#event(target, entry.stream, entry.via, entry.startedAt), `stream.started:${target.name}:${key}:${entry.gen}`);
    entry.announced = true;
    await doc.save(state);
    this.#log.info({ source: target.name, key, user: entry.stream.user, item: entry.stream.item.name }, 'stream started');
  }

  async #stop(target: TargetRef, doc: Doc<StreamsDoc>, state: StreamsDoc, key: string, via: 'poll' | 'webhook'): Promise<void> {
    const entry = state.active[key]!;
    if (!entry.announced) await this.#publishStart(target, doc, state, key);
    const now = this.#clock();
    const latest = this.#latest.get(`${target.name}|${key}`);
    const stream = via === 'poll' && latest ? latest : entry.stream;
    await this.#sink.publish('mediaStreamStopped', this.#event(target, stream, via, entry.startedAt, now), `stream.stopped:${target.name}:${key}:${entry.gen}`);
    this.#latest.delete(`${target.name}|${key}`);
    delete state.active[key];
    if (via === 'webhook') state.stoppedAt[key] = now;
    await doc.save(state);
    this.#log.info({ source: target.name, key, via }, 'stream stopped');
  }

  idle(): Promise<void> {
    return this.#mutex.idle();
  }
}

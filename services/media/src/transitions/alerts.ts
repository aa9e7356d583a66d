import type { MediaErrorReason, MediaKind, MediaPathUsage } from '@homelab/bus';
import type { Logger } from '@homelab/logging';
import type { MediaError } from '../errors.ts';
import { Doc, KeyedMutex, type StateStore } from '../state.ts';
import { isLow, type LowSpaceThresholds } from '../storage.ts';
import { systemClock, type Clock, type EventSink } from './sink.ts';

/*
 * Two alerts that fire on a crossing, once each way:
 * - storage: a path goes below the low-space threshold (`media.storage.low`) and back above it
 *   plus the hysteresis (`media.storage.recovered`); state in KV `storage`.
 * - a target (or the storage check) starts failing (`media.service.error`, again only when the
 *   reason changes) and answers again (`media.service.recovered`); state in KV `targets.<name>.health`.
 * Both record the crossing before publishing, so a crash in between replays the same msgId.
 */

interface PathState { low: boolean; gen: number; announced: boolean; usage: MediaPathUsage }
interface StorageDoc { v: 1; paths: Record<string, PathState> }

export interface AlertOptions {
  store: StateStore;
  sink: EventSink;
  log: Logger;
  clock?: Clock;
}

export class StorageAlerts {
  readonly #doc: Doc<StorageDoc>;
  readonly #sink: EventSink;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #mutex = new KeyedMutex();

  constructor(options: AlertOptions) {
    this.#doc = new Doc(options.store, 'storage');
    this.#sink = options.sink;
    this.#log = options.log;
    this.#clock = options.clock ?? systemClock;
  }

  /** Sets each usage's `low` and announces crossings. A path that cannot be read keeps its last state. */
  observe(usages: MediaPathUsage[], t: LowSpaceThresholds): Promise<MediaPathUsage[]> {
    return this.#mutex.run('storage', async () => {
      const state = (await this.#doc.load()) ?? { v: 1, paths: {} };
      const out: MediaPathUsage[] = [];
      let changed = false;
      for (const usage of usages) {
        const previous = state.paths[usage.path];
        const wasLow = previous?.low ?? false;
        const low = isLow(usage, t, wasLow);
        out.push({ ...usage, low });
        if (!usage.ok) continue;
        if (previous && low === wasLow) {
          if (!previous.announced) await this.#announce(state, usage.path, t);
          continue;
        }
        if (!previous && !low) { state.paths[usage.path] = { low: false, gen: 0, announced: true, usage }; changed = true; continue; }
        const now = this.#clock();
        state.paths[usage.path] = { low, gen: now, announced: false, usage: { ...usage, low } };
        await this.#doc.save(state);
        await this.#announce(state, usage.path, t);
      }
      for (const path of Object.keys(state.paths)) if (!usages.some((u) => u.path === path)) { delete state.paths[path]; changed = true; }
      if (changed) await this.#doc.save(state);
      return out;
    });
  }

  async #announce(state: StorageDoc, path: string, t: LowSpaceThresholds): Promise<void> {
    const entry = state.paths[path]!;
    const u = entry.usage;
    const state_ = entry.low ? 'low' : 'recovered';
    await this.#sink.publish(entry.low ? 'mediaStorageLow' : 'mediaStorageRecovered', {
      path, state: state_, at: new Date(this.#clock()).toISOString(), freeBytes: u.freeBytes ?? 0, totalBytes: u.totalBytes ?? 0, freePercent: u.freePercent ?? 0,
      thresholdPercent: t.freePercent, ...(t.freeBytes !== undefined && { thresholdBytes: t.freeBytes }),
    }, `storage.${state_}:${path}:${entry.gen}`);
    entry.announced = true;
    await this.#doc.save(state);
    this.#log.warn({ path, state: state_, freePercent: u.freePercent }, entry.low ? 'storage low' : 'storage recovered');
  }
}

interface HealthDoc {
  v: 1;
  error?: { reason: MediaErrorReason; message: string; status?: number; endpoint?: string; since: number; gen: number; announced: boolean };
}

export interface ServiceRef { name: string; kind: MediaKind | 'storage' }

export class ServiceAlerts {
  readonly #store: StateStore;
  readonly #sink: EventSink;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #mutex = new KeyedMutex();
  readonly #docs = new Map<string, Doc<HealthDoc>>();

  constructor(options: AlertOptions) {
    this.#store = options.store;
    this.#sink = options.sink;
    this.#log = options.log;
    this.#clock = options.clock ?? systemClock;
  }

  #doc(name: string): Doc<HealthDoc> {
    let doc = this.#docs.get(name);
    if (!doc) { doc = new Doc(this.#store, `targets.${name}.health`); this.#docs.set(name, doc); }
    return doc;
  }

  /** The target failed. Announced when it was working before, or failed for another reason. */
  error(target: ServiceRef, err: MediaError): Promise<void> {
    return this.#mutex.run(target.name, async () => {
      const doc = this.#doc(target.name);
      const state = (await doc.load()) ?? { v: 1 };
      const current = state.error;
      if (current && current.reason === err.reason) {
        if (!current.announced) await this.#announceError(target, doc, state);
        return;
      }
      const now = this.#clock();
      state.error = {
        reason: err.reason, message: err.message, since: current?.since ?? now, gen: now, announced: false,
        ...(err.status !== undefined && { status: err.status }), ...(err.endpoint !== undefined && { endpoint: err.endpoint }),
      };
      await doc.save(state);
      await this.#announceError(target, doc, state);
    });
  }

  /** The target answered. Announces the recovery when it was failing. */
  ok(target: ServiceRef): Promise<void> {
    return this.#mutex.run(target.name, async () => {
      const doc = this.#doc(target.name);
      const state = await doc.load();
      const current = state?.error;
      if (!current) return;
      if (!current.announced) await this.#announceError(target, doc, state);
      const now = this.#clock();
      await this.#sink.publish('mediaServiceRecovered', {
        source: target.name, kind: target.kind, at: new Date(now).toISOString(), since: new Date(current.since).toISOString(), downMs: Math.max(0, now - current.since), lastReason: current.reason,
      }, `service.recovered:${target.name}:${current.gen}`);
      await doc.save({ v: 1 });
      this.#log.info({ source: target.name, downMs: now - current.since }, 'service recovered');
    });
  }

  async #announceError(target: ServiceRef, doc: Doc<HealthDoc>, state: HealthDoc): Promise<void> {
    const e = state.error!;
    await this.#sink.publish('mediaServiceError', {
      source: target.name, kind: target.kind, reason: e.reason, message: e.message, at: new Date(this.#clock()).toISOString(), since: new Date(e.since).toISOString(),
      ...(e.status !== undefined && { status: e.status }), ...(e.endpoint !== undefined && { endpoint: e.endpoint }),
    }, `service.error:${target.name}:${e.reason}:${e.gen}`);
    e.announced = true;
    await doc.save(state);
    this.#log.warn({ source: target.name, reason: e.reason, err: e.message }, 'service error');
  }
}

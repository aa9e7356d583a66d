import type { MediaDownloadPhase, MediaKind } from '@homelab/bus';
import type { Logger } from '@homelab/logging';
import { PollAborted } from '../errors.ts';
import { Doc, KeyedMutex, keyToken, type StateStore } from '../state.ts';
import { downloadKey, type DownloadInfo, type DownloadObservation, type DownloadState, type GoneOutcome } from '../targets/types.ts';
import { systemClock, type Clock, type EventSink, type TargetRef } from './sink.ts';

/*
 * Downloads: grabbed → completed → imported, or failed. Each target's last view (its queue or torrent
 * list) is compared with the new one; a download's record (`downloads.<id>`) says which phases were
 * already announced, whichever target or webhook saw them first. Sonarr's queue item and the
 * qBittorrent torrent behind it share the id (the info hash), so they make one series of events.
 *
 * The first poll of a target (no last view in KV) only records a baseline: a media service
 * installed next to a queue of fifty items does not announce fifty grabs.
 */

interface TargetItem {
  state: DownloadState;
  raw: string;
  title: string;
  /** Failed history lookups after the item left the queue. */
  goneChecks?: number;
}

interface TargetDownloads {
  v: 1;
  items: Record<string, TargetItem>;
  savedAt: number;
}

interface DownloadRecord {
  id: string;
  /** When the record was created: names this download's msgIds. */
  gen: number;
  emitted: MediaDownloadPhase[];
  /** Set once imported, failed or removed. */
  closedAt?: number;
  source: string;
  kind: MediaKind;
  title: string;
}

const SUBJECT_KEY = {
  grabbed: 'mediaDownloadGrabbed', completed: 'mediaDownloadCompleted', imported: 'mediaDownloadImported', failed: 'mediaDownloadFailed',
} as const;
const ORDER: MediaDownloadPhase[] = ['grabbed', 'completed', 'imported'];
const RANK: Record<Exclude<DownloadState, 'failed'>, number> = { downloading: 0, completed: 1, imported: 2 };
/** A closed download seen anew after this long is a new download (the same torrent grabbed again). */
const REOPEN_AFTER_MS = 24 * 3600_000;
const MAX_GONE_CHECKS = 5;
const RESAVE_AFTER_MS = 24 * 3600_000;

/** The phases a change of state announces, in order. */
export function impliedPhases(before: DownloadState | undefined, now: DownloadState): MediaDownloadPhase[] {
  if (now === 'failed') return before === 'failed' ? [] : before === undefined ? ['grabbed', 'failed'] : ['failed'];
  const from = before === undefined ? -1 : before === 'failed' ? 0 : RANK[before];
  return ORDER.slice(from + 1, RANK[now] + 1);
}

export interface DownloadTrackerOptions {
  store: StateStore;
  sink: EventSink;
  log: Logger;
  clock?: Clock;
}

export class DownloadTracker {
  readonly #store: StateStore;
  readonly #sink: EventSink;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #mutex = new KeyedMutex();
  readonly #docs = new Map<string, Doc<TargetDownloads>>();

  constructor(options: DownloadTrackerOptions) {
    this.#store = options.store;
    this.#sink = options.sink;
    this.#log = options.log;
    this.#clock = options.clock ?? systemClock;
  }

  /**
   * A target's current downloads. `complete`: every item was read, so one missing from the list has
   * left; `resolveGone` tells what became of it.
   */
  observe(
    target: TargetRef, observations: DownloadObservation[],
    options: { complete: boolean; resolveGone?: ((rawId: string, signal: AbortSignal) => Promise<GoneOutcome>) | undefined; signal?: AbortSignal },
  ): Promise<void> {
    return this.#mutex.run(`target:${target.name}`, async () => {
      const doc = this.#doc(target.name);
      const previous = await doc.load();
      const seen = new Map<string, DownloadObservation>();
      for (const o of observations) if (!seen.has(o.id)) seen.set(o.id, o);
      const items: Record<string, TargetItem> = {};
      const now = this.#clock();
      if (!previous) {
        for (const o of seen.values()) items[o.id] = { state: o.state, raw: o.rawId, title: o.info.title };
        await doc.save({ v: 1, items, savedAt: now });
        this.#log.info({ target: target.name, items: seen.size }, 'first look at this target: baseline recorded, no events');
        return;
      }
      for (const o of seen.values()) {
        const before = previous.items[o.id];
        const phases = impliedPhases(before?.state, o.state);
        if (phases.length > 0) await this.#announce(target, o.id, () => phases, o.info, 'poll', before === undefined);
        items[o.id] = { state: o.state, raw: o.rawId, title: o.info.title };
      }
      for (const [id, before] of Object.entries(previous.items)) {
        if (seen.has(id)) continue;
        if (!options.complete) { items[id] = before; continue; }
        if (!options.resolveGone || before.state === 'imported' || before.state === 'failed') { await this.#close(id); continue; }
        let outcome: GoneOutcome;
        try {
          outcome = await options.resolveGone(before.raw, options.signal ?? new AbortController().signal);
        } catch (err) {
          if (err instanceof PollAborted) throw err;
          const checks = (before.goneChecks ?? 0) + 1;
          if (checks < MAX_GONE_CHECKS) items[id] = { ...before, goneChecks: checks };
          this.#log.warn({ target: target.name, downloadId: id, err: (err as Error).message }, 'could not look up a download that left the queue; trying again next poll');
          continue;
        }
        if (outcome === 'imported') await this.#announce(target, id, () => impliedPhases(before.state, 'imported'), { title: before.title }, 'poll', false);
        else if (outcome === 'failed') await this.#announce(target, id, () => ['failed'], { title: before.title, reason: 'marked failed in the history' }, 'poll', false);
        else await this.#close(id);
      }
      if (!sameItems(previous.items, items) || now - previous.savedAt > RESAVE_AFTER_MS) await doc.save({ v: 1, items, savedAt: now });
    });
  }

  /** A Grab or Download (import) webhook from Sonarr/Radarr. */
  webhook(target: TargetRef, rawId: string, phase: 'grabbed' | 'imported', info: DownloadInfo): Promise<void> {
    const id = downloadKey(rawId);
    // An import of a download seen grabbed implies it completed; one never seen is announced as imported only.
    const phases = (record: DownloadRecord | undefined): MediaDownloadPhase[] => (phase === 'imported' && record?.emitted.includes('grabbed') ? ['completed', 'imported'] : [phase]);
    return this.#announce(target, id, phases, info, 'webhook', phase === 'grabbed');
  }

  #doc(name: string): Doc<TargetDownloads> {
    let doc = this.#docs.get(name);
    if (!doc) { doc = new Doc(this.#store, `targets.${name}.downloads`); this.#docs.set(name, doc); }
    return doc;
  }

  /** Publishes the phases not announced yet. The record is written before the first publish, so a retry after a crash reuses its msgIds. */
  #announce(
    target: TargetRef, id: string, phasesFor: (record: DownloadRecord | undefined) => MediaDownloadPhase[], info: DownloadInfo, via: 'poll' | 'webhook', appearing: boolean,
  ): Promise<void> {
    return this.#mutex.run(`download:${id}`, async () => {
      const doc = new Doc<DownloadRecord>(this.#store, `downloads.${keyToken(id)}`);
      let record = await doc.load();
      const now = this.#clock();
      const reopen = record?.closedAt !== undefined && appearing && now - record.closedAt > REOPEN_AFTER_MS;
      const phases = phasesFor(reopen ? undefined : record);
      if (phases.every((p) => record?.emitted.includes(p)) && !reopen) return;
      if (!record || reopen) {
        record = { id, gen: now, emitted: [], source: target.name, kind: target.kind, title: info.title };
        await doc.save(record);
      }
      for (const phase of phases) {
        if (record.emitted.includes(phase)) continue;
        const at = new Date(this.#clock()).toISOString();
        await this.#sink.publish(SUBJECT_KEY[phase], { downloadId: id, phase, source: target.name, kind: target.kind, via, at, ...info }, `download.${phase}:${id}:${record.gen}`);
        record.emitted.push(phase);
        if (phase === 'imported' || phase === 'failed') record.closedAt = now;
        await doc.save(record);
        this.#log.info({ downloadId: id, phase, source: target.name, via }, 'download event');
      }
    });
  }

  /** A download left a queue without an outcome to announce: a later appearance more than a day on is a new download. */
  #close(id: string): Promise<void> {
    return this.#mutex.run(`download:${id}`, async () => {
      const doc = new Doc<DownloadRecord>(this.#store, `downloads.${keyToken(id)}`);
      const record = await doc.load();
      if (!record || record.closedAt !== undefined) return;
      await doc.save({ ...record, closedAt: this.#clock() });
    });
  }

  /** Resolves when nothing is in flight (tests, shutdown). */
  idle(): Promise<void> {
    return this.#mutex.idle();
  }
}

function sameItems(a: Record<string, TargetItem>, b: Record<string, TargetItem>): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => {
    const x = a[k]!;
    const y = b[k];
    return y !== undefined && x.state === y.state && x.raw === y.raw && (x.goneChecks ?? 0) === (y.goneChecks ?? 0);
  });
}

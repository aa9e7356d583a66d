import { createHash } from 'node:crypto';
import type { KV } from '@nats-io/kv';

/*
 * The media service's last state, kept in the KV bucket `media` so a restart compares with what it
 * saw before it stopped. Keys:
 *   targets.<name>.downloads   the items of a target's queue / torrent list and where each stood
 *   targets.<name>.streams     a Jellyfin target's active streams
 *   targets.<name>.health      a target's current error, if any
 *   downloads.<id>             one download: the phases already announced (across targets and webhooks)
 *   storage                    which paths are low on space
 * Values are JSON. Writes carry the revision they were computed from, so two instances never
 * silently overwrite each other.
 */

export interface Stored<T> {
  value: T;
  revision: number;
}

export interface StateStore {
  get<T>(key: string): Promise<Stored<T> | undefined>;
  /** Writes `value`; with `revision`, only if the key is still at it (0: only if absent). Returns the new revision. */
  put(key: string, value: unknown, revision?: number): Promise<number>;
  delete(key: string): Promise<void>;
}

/** Thrown by `put` when the key changed since it was read. */
export class StateConflict extends Error {
  constructor(key: string, options?: { cause?: unknown }) {
    super(`state '${key}' was changed by someone else`, options);
    this.name = 'StateConflict';
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class KvStateStore implements StateStore {
  readonly #kv: KV;
  constructor(kv: KV) {
    this.#kv = kv;
  }

  async get<T>(key: string): Promise<Stored<T> | undefined> {
    const entry = await this.#kv.get(key);
    if (!entry || entry.operation !== 'PUT' || entry.value.length === 0) return undefined;
    try {
      return { value: JSON.parse(decoder.decode(entry.value)) as T, revision: entry.revision };
    } catch {
      return undefined; // a value this version cannot read: start over for that key
    }
  }

  async put(key: string, value: unknown, revision?: number): Promise<number> {
    const data = encoder.encode(JSON.stringify(value));
    try {
      if (revision === undefined) return await this.#kv.put(key, data);
      if (revision === 0) return await this.#kv.create(key, data);
      return await this.#kv.update(key, data, revision);
    } catch (err) {
      if (/wrong last sequence|key exists/i.test((err as Error).message)) throw new StateConflict(key, { cause: err });
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    await this.#kv.delete(key);
  }
}

/** The same contract in memory, for unit tests. */
export class MemoryStateStore implements StateStore {
  readonly #data = new Map<string, { json: string; revision: number }>();
  #revision = 0;

  async get<T>(key: string): Promise<Stored<T> | undefined> {
    const e = this.#data.get(key);
    return e ? { value: JSON.parse(e.json) as T, revision: e.revision } : undefined;
  }

  async put(key: string, value: unknown, revision?: number): Promise<number> {
    const current = this.#data.get(key);
    if (revision !== undefined && (current?.revision ?? 0) !== revision) throw new StateConflict(key);
    const next = ++this.#revision;
    this.#data.set(key, { json: JSON.stringify(value), revision: next });
    return next;
  }

  async delete(key: string): Promise<void> {
    this.#data.delete(key);
  }
}

/**
 * A JSON document in the store, cached after the first read. `save` writes against the revision it
 * was read at; on a conflict the cache is dropped, so the next `load` reads what the other writer left.
 */
export class Doc<T> {
  readonly #store: StateStore;
  readonly key: string;
  #cached: { value: T | undefined; revision: number } | undefined;

  constructor(store: StateStore, key: string) {
    this.#store = store;
    this.key = key;
  }

  async load(): Promise<T | undefined> {
    if (!this.#cached) {
      const stored = await this.#store.get<T>(this.key);
      this.#cached = { value: stored?.value, revision: stored?.revision ?? 0 };
    }
    return this.#cached.value === undefined ? undefined : structuredClone(this.#cached.value);
  }

  async save(value: T): Promise<void> {
    const revision = this.#cached?.revision ?? 0;
    try {
      const next = await this.#store.put(this.key, value, revision);
      this.#cached = { value: structuredClone(value), revision: next };
    } catch (err) {
      this.#cached = undefined;
      throw err;
    }
  }

  async remove(): Promise<void> {
    await this.#store.delete(this.key);
    this.#cached = undefined;
  }
}

/** A KV key token for any id: itself when it is safe, else `=` + its SHA-256 (KV keys allow `[-/=.\w]`). */
export function keyToken(id: string): string {
  return /^[A-Za-z0-9_-]{1,200}$/.test(id) ? id : `=${createHash('sha256').update(id).digest('base64url')}`;
}

/** Runs functions one at a time per key (a target's state, a download's record). */
export class KeyedMutex {
  readonly #tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    const result = previous.then(fn, fn);
    const tail = result.then(() => undefined, () => undefined);
    this.#tails.set(key, tail);
    void tail.then(() => { if (this.#tails.get(key) === tail) this.#tails.delete(key); });
    return result;
  }

  /** Resolves once everything queued so far has run. */
  async idle(): Promise<void> {
    while (this.#tails.size > 0) await Promise.all([...this.#tails.values()]);
  }
}

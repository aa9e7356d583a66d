import type { NatsConnection } from '@nats-io/transport-node';
import type { KV } from '@nats-io/kv';
import {
  HEALTH_KV_BUCKET, HealthTargetStatusSchema, healthEventSubject, createKvBucket, validator, type EventPublisher, type HealthChanged, type HealthTargetStatus,
} from '@homelab/bus';
import type { Logger } from '@homelab/logging';

/*
 * Where the health service's state lives between runs: one KV entry per target (bucket
 * `health`, key `<node>.<service>`), written after every probe, read back at start. State
 * changes go to JetStream (stream HEALTH) in order with the KV writes: a change's event is stored
 * before the record that reflects it, so a crash between the two repeats nothing and loses nothing.
 */

const checkRecord = validator(HealthTargetStatusSchema);
const encoder = new TextEncoder();

export class HealthStore {
  readonly #kv: KV;
  readonly #log: Logger;

  private constructor(kv: KV, log: Logger) {
    this.#kv = kv;
    this.#log = log;
  }

  /** Opens (creating when missing) the `health` bucket. */
  static async open(nc: NatsConnection, options: { replicas: number; log: Logger }): Promise<HealthStore> {
    const kv = await createKvBucket(nc, HEALTH_KV_BUCKET, {
      replicas: options.replicas, history: 1, description: 'Health of every target of the lab: one HealthTargetStatus per <node>.<service>',
    });
    return new HealthStore(kv, options.log);
  }

  /** Every valid record in the bucket; invalid ones (an older shape) are skipped and overwritten later. */
  async loadAll(): Promise<HealthTargetStatus[]> {
    const keys: string[] = [];
    for await (const key of await this.#kv.keys()) keys.push(key);
    const records: HealthTargetStatus[] = [];
    for (const key of keys) {
      const entry = await this.#kv.get(key);
      if (!entry || entry.operation !== 'PUT') continue;
      let value: unknown;
      try { value = entry.json(); } catch { value = undefined; }
      if (checkRecord.check(value) && value.key === key) records.push(value);
      else this.#log.warn({ key }, 'ignoring an unreadable health record');
    }
    return records;
  }

  async put(record: HealthTargetStatus): Promise<void> {
    await this.#kv.put(record.key, encoder.encode(JSON.stringify(record)));
  }

  async delete(key: string): Promise<void> {
    await this.#kv.delete(key);
  }
}

type Item =
  | { kind: 'event'; event: HealthChanged }
  | { kind: 'record'; value: HealthTargetStatus }
  | { kind: 'forget'; key: string };

export interface WriterDeps {
  publishEvent(event: HealthChanged): Promise<void>;
  putRecord(record: HealthTargetStatus): Promise<void>;
  deleteRecord(key: string): Promise<void>;
  log: Logger;
  /**
   * How long one event is retried before it is given up (JetStream down for long). Within the
   * streams' 120 s duplicate window a retry of an event the server did store is a no-op.
   */
  eventRetryForMs?: number;
  retryDelayMs?: number;
}

/**
 * One ordered queue of writes. Successive records of one target with no event between them
 * collapse into the newest, so an outage of JetStream grows the queue by events only.
 */
export class HealthWriter {
  readonly #d: WriterDeps;
  readonly #items: Item[] = [];
  /** The queued, not yet written record item of each key: later records replace its value. */
  readonly #open = new Map<string, Extract<Item, { kind: 'record' }>>();
  #draining: Promise<void> | null = null;
  #kvFailing = false;
  #closing = false;

  constructor(deps: WriterDeps) {
    this.#d = deps;
  }

  event(event: HealthChanged): void {
    this.#open.delete(event.key);
    this.#push({ kind: 'event', event });
  }

  record(value: HealthTargetStatus): void {
    const open = this.#open.get(value.key);
    if (open) { open.value = value; return; }
    const item = { kind: 'record' as const, value };
    this.#open.set(value.key, item);
    this.#push(item);
  }

  forget(key: string): void {
    this.#open.delete(key);
    this.#push({ kind: 'forget', key });
  }

  get pending(): number {
    return this.#items.length;
  }

  /** Resolves when everything queued so far is written (or given up). */
  async flush(): Promise<void> {
    while (this.#draining) await this.#draining;
  }

  /** At shutdown: one more attempt per queued write, no back-off, at most `timeoutMs`. */
  async close(timeoutMs = 3000): Promise<void> {
    this.#closing = true;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.flush(), new Promise<void>((r) => { timer = setTimeout(r, timeoutMs); })]);
    clearTimeout(timer);
    if (this.#items.length > 0) this.#d.log.warn({ pending: this.#items.length }, 'health writes left unwritten at shutdown');
  }

  #push(item: Item): void {
    this.#items.push(item);
    if (!this.#draining) {
      this.#draining = this.#drain().finally(() => { this.#draining = null; });
    }
  }

  async #drain(): Promise<void> {
    for (let item = this.#items.shift(); item; item = this.#items.shift()) {
      if (item.kind === 'event') await this.#publish(item.event);
      else if (item.kind === 'record') {
        if (this.#open.get(item.value.key) === item) this.#open.delete(item.value.key);
        await this.#kvWrite(() => this.#d.putRecord(item.value), item.value.key);
      } else {
        await this.#kvWrite(() => this.#d.deleteRecord(item.key), item.key);
      }
    }
  }

  async #publish(event: HealthChanged): Promise<void> {
    const giveUpAt = Date.now() + (this.#d.eventRetryForMs ?? 110_000);
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#d.publishEvent(event);
        if (attempt > 1) this.#d.log.info({ key: event.key, id: event.id, attempts: attempt }, 'health event stored after retries');
        return;
      } catch (err) {
        if (Date.now() >= giveUpAt || this.#closing) {
          this.#d.log.error({ key: event.key, id: event.id, err: (err as Error).message }, 'health event not stored; giving up on it');
          return;
        }
        if (attempt === 1) this.#d.log.warn({ key: event.key, id: event.id, err: (err as Error).message }, 'health event not stored yet; retrying');
        // The msgId makes a retry of an event the server did store a no-op.
        await new Promise((r) => setTimeout(r, Math.min((this.#d.retryDelayMs ?? 250) * 2 ** (attempt - 1), 5000)));
      }
    }
  }

  async #kvWrite(write: () => Promise<void>, key: string): Promise<void> {
    try {
      await write();
      if (this.#kvFailing) this.#d.log.info('health KV writes work again');
      this.#kvFailing = false;
    } catch (err) {
      // The next probe writes the record again; say it once per outage.
      if (!this.#kvFailing) this.#d.log.warn({ key, err: (err as Error).message }, 'health KV write failed');
      this.#kvFailing = true;
    }
  }
}

/** Publishes a state change on `health.<node>.<service>` with its id as msgId. */
export function eventPublisherFor(events: EventPublisher): (event: HealthChanged) => Promise<void> {
  return (event) => events.publish('healthChanged', event, { subject: healthEventSubject(event.node, event.service), msgId: event.id });
}

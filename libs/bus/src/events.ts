import { AckPolicy, DeliverPolicy, RetentionPolicy, StorageType, jetstream, jetstreamManager, type JsMsg, type StreamInfo } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { TSchema } from '@sinclair/typebox';
import type { Logger } from '@homelab/logging';
import { H, createHeaders, type MsgHeaders } from './headers.ts';
import type { ReplyMux } from './requester.ts';
import { encodeJson, validator, type Validator } from './schemas.ts';
import { ensureDurableConsumer, isNotFound, retryJetStreamApi } from './jetstream-api.ts';
import { Streams, Subjects, type EventKey, type EventPayload, type StreamSpec, type SubjectSpec } from './subjects.ts';

const DAY_NS = 24 * 3600 * 1e9;

/**
 * Creates the project's streams, or updates them when their subjects or replica count changed. Every
 * service that publishes or consumes events calls it at start, so start order does not matter.
 */
export async function ensureStreams(nc: NatsConnection, options: { replicas?: number; streams?: StreamSpec[] } = {}): Promise<void> {
  const jsm = await retryJetStreamApi(() => jetstreamManager(nc));
  const replicas = options.replicas ?? 1;
  for (const spec of options.streams ?? Streams) {
    const config = {
      name: spec.name, subjects: spec.subjects, description: spec.description, storage: StorageType.File,
      max_age: spec.maxAgeDays * DAY_NS, num_replicas: replicas, duplicate_window: 120 * 1e9,
      ...(spec.retention === 'workqueue' && { retention: RetentionPolicy.Workqueue }),
    };
    let info: StreamInfo | undefined;
    try {
      info = await retryJetStreamApi(() => jsm.streams.info(spec.name));
    } catch (err) {
      if (!isNotFound(err)) throw streamError(spec, replicas, err);
    }
    try {
      if (!info) {
        await retryJetStreamApi(() => jsm.streams.add(config), { placement: replicas > 1 });
        continue;
      }
      // A stream that sources or mirrors others is an aggregate set up by the operator (deploy/nats/streams/,
      // e.g. the hub's MEDIA fed by the media node's leaf): it captures no subjects, and must not start to,
      // or each event would be stored twice. Only its replica count follows the config.
      const aggregate = !!(info.config.sources?.length || info.config.mirror);
      const same = aggregate || (info.config.subjects?.length === spec.subjects.length && spec.subjects.every((s) => info.config.subjects?.includes(s)));
      // Growing from one server to a cluster: raising nats.replicas re-replicates the existing streams.
      if (!same || info.config.num_replicas !== replicas) {
        const current = info.config;
        await retryJetStreamApi(() => jsm.streams.update(spec.name, { ...current, ...(!aggregate && { subjects: spec.subjects }), num_replicas: replicas }), { placement: replicas > 1 });
      }
    } catch (err) {
      throw streamError(spec, replicas, err);
    }
  }
}

function streamError(spec: StreamSpec, replicas: number, err: unknown): Error {
  const message = (err as Error).message;
  if (/replicas|peer|insufficient resources|no suitable/i.test(message) && replicas > 1) {
    return new Error(
      `stream ${spec.name}: nats.replicas is ${replicas}, but the NATS servers this service reaches cannot hold ${replicas} copies (${message}). ` +
      `Set nats.replicas (or NATS_REPLICAS for this service) to at most the number of JetStream servers of its cluster: 1 for a single server or a leaf node, 3 for the three-server hub`,
      { cause: err },
    );
  }
  return new Error(`stream ${spec.name}: ${message}`, { cause: err });
}

interface EventOptions { msgId?: string; subject?: string; traceparent?: string }

/** An event on its way to JetStream: kept until the server acks it or the retry window closes. */
interface Outgoing {
  subject: string;
  data: Uint8Array;
  headers: MsgHeaders;
  deadline: number;
  attempt: number;
  settle(error?: Error): void;
}

/**
 * Publishes events to JetStream, the acks collected on the process's reply mux. `emit` does not
 * wait: the ack is handled when it arrives, and a publish that got none (no stream leader for a
 * moment, a lost ack) is sent again with the same `Nats-Msg-Id`, which the server's duplicate
 * window turns into a no-op, until the retry window closes. `publish` is the same with a promise,
 * for the callers that must know the event is stored.
 */
export class EventPublisher {
  readonly #nc: NatsConnection;
  readonly #mux: ReplyMux;
  readonly #onLost: (subject: string, error: Error) => void;
  #unacked = 0;

  constructor(nc: NatsConnection, mux: ReplyMux, onLost: (subject: string, error: Error) => void = () => {}) {
    this.#nc = nc;
    this.#mux = mux;
    this.#onLost = onLost;
  }

  /** Events published and not acknowledged yet. */
  get unacked(): number {
    return this.#unacked;
  }

  /** Publishes without waiting; an event that cannot be stored within the retry window is reported to `onLost`. */
  emit<K extends EventKey>(key: K, payload: EventPayload<K>, options: EventOptions = {}): void {
    this.#send(this.#outgoing(key, payload, options, (error) => { if (error) this.#onLost(error.subject, error); }));
  }

  /** Publishes and resolves once the server stored the event (or rejects when it could not). */
  publish<K extends EventKey>(key: K, payload: EventPayload<K>, options: EventOptions = {}): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#send(this.#outgoing(key, payload, options, (error) => (error ? reject(error) : resolve())));
    });
  }

  #outgoing<K extends EventKey>(key: K, payload: EventPayload<K>, options: EventOptions, settle: (error?: EventStoreError) => void): Outgoing {
    const headers = createHeaders();
    if (options.traceparent) headers.set(H.traceparent, options.traceparent);
    if (options.msgId) headers.set(H.msgId, options.msgId);
    const subject = options.subject ?? (Subjects[key] as SubjectSpec).subject;
    this.#unacked++;
    return {
      subject, headers, data: encodeJson(payload), deadline: Date.now() + PUBLISH_RETRY_MS, attempt: 0,
      settle: (error) => { this.#unacked--; settle(error && new EventStoreError(subject, error)); },
    };
  }

  #send(event: Outgoing): void {
    // A retry may come due after the connection was closed (a service stopping): the event is lost, said so.
    if (this.#nc.isClosed()) return event.settle(new Error('the bus connection is closed'));
    event.attempt++;
    const inbox = this.#mux.open(
      (ack) => {
        inbox.close();
        // The server's no-responders status: no stream leader right now.
        if (ack.data.length === 0 && ack.headers?.code === 503) return this.#retry(event, new Error('no JetStream stream answers'));
        const refusal = jetStreamRefusal(ack.data);
        event.settle(refusal ? new Error(`JetStream refused the event: ${refusal}`) : undefined);
      },
      (reason) => { inbox.close(); this.#retry(event, new Error(reason === 'timeout' ? 'no acknowledgement in time' : 'the bus connection dropped')); },
      ACK_TIMEOUT_MS,
    );
    this.#nc.publish(event.subject, event.data, { reply: inbox.subject, headers: event.headers });
  }

  #retry(event: Outgoing, error: Error): void {
    if (Date.now() >= event.deadline || this.#nc.isClosed()) return event.settle(error);
    setTimeout(() => this.#send(event), Math.min(200 * event.attempt, 1000)).unref();
  }
}

/** An event that could not be stored: names the subject, never the payload. */
export class EventStoreError extends Error {
  readonly subject: string;
  constructor(subject: string, cause: Error) {
    super(`could not store the event on ${subject}: ${cause.message}`, { cause });
    this.name = 'EventStoreError';
    this.subject = subject;
  }
}

function jetStreamRefusal(data: Uint8Array): string | undefined {
  if (data.length === 0) return undefined;
  try {
    const body = JSON.parse(decoder.decode(data)) as { error?: { description?: string; code?: number } };
    return body.error ? String(body.error.description ?? body.error.code) : undefined;
  } catch {
    return undefined;
  }
}

const ACK_TIMEOUT_MS = 5000;

const decoder = new TextDecoder();
/** How long a publish keeps retrying: longer than a JetStream cluster takes to elect a stream's new leader. */
const PUBLISH_RETRY_MS = 15_000;

const validators = new Map<string, Validator<unknown>>();
/**
 * Compiled once per pattern of the subject map: subjects with an id in them (`images.progress.<job id>`)
 * are new with every job, and compiling a schema costs hundreds of µs (bench/images.ts measured it).
 */
const compiledByPattern = new Map<string, Validator<unknown>>();
/** The validator of an event subject, matching the subject map's patterns (`*` = one token, `>` = the rest). */
export function eventValidator(subject: string): Validator<unknown> | undefined {
  const cached = validators.get(subject);
  if (cached) return cached;
  for (const spec of Object.values(Subjects) as SubjectSpec[]) {
    if (spec.kind !== 'event' || !spec.schema || !subjectMatches(spec.subject, subject)) continue;
    let v = compiledByPattern.get(spec.subject);
    if (!v) {
      v = validator(spec.schema as TSchema);
      compiledByPattern.set(spec.subject, v);
    }
    if (validators.size < 10_000) validators.set(subject, v);
    return v;
  }
  return undefined;
}

export function subjectMatches(pattern: string, subject: string): boolean {
  const p = pattern.split('.');
  const s = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return s.length > i;
    if (i >= s.length || (p[i] !== '*' && p[i] !== s[i])) return false;
  }
  return p.length === s.length;
}

export interface ConsumeEventsOptions {
  nc: NatsConnection;
  log: Logger;
  stream: string;
  /** Durable consumer name: the server remembers what it acked, across restarts. */
  durable: string;
  filterSubjects?: string[];
  /** Applies one event; resolve to ack, throw to have it redelivered later. */
  handler: (subject: string, payload: unknown, msg: JsMsg) => void | Promise<void>;
  /** Called for events that fail validation (they are logged, counted and terminated, never redelivered). */
  onInvalid?: (subject: string, error: Error) => void;
  signal?: AbortSignal;
}

/**
 * Consumes a stream with a durable pull consumer and explicit acks: an event is acked only
 * after the handler applied it, so a consumer that was down counts everything when it returns.
 */
export async function consumeEvents(options: ConsumeEventsOptions): Promise<{ stop(): Promise<void> }> {
  const { nc, log, stream, durable } = options;
  const config = {
    durable_name: durable, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, ack_wait: 30 * 1e9, max_deliver: 10,
    // nats-server 2.9 (Debian 12) knows only the singular filter; several need 2.10.
    ...(options.filterSubjects?.length === 1 && { filter_subject: options.filterSubjects[0] }),
    ...(options.filterSubjects && options.filterSubjects.length > 1 && { filter_subjects: options.filterSubjects }),
  };
  await ensureDurableConsumer(nc, stream, config);
  const consumer = await jetstream(nc).consumers.get(stream, durable);
  const messages = await consumer.consume({ max_messages: 256, expires: 5000, idle_heartbeat: 1000 });
  const loop = (async () => {
    for await (const msg of messages) {
      const check = eventValidator(msg.subject);
      let payload: unknown;
      try {
        payload = JSON.parse(msg.string());
        if (check) check.parse(payload);
      } catch (err) {
        log.warn({ subject: msg.subject, seq: msg.seq, err: (err as Error).message }, 'invalid event dropped');
        options.onInvalid?.(msg.subject, err as Error);
        msg.term();
        continue;
      }
      try {
        await options.handler(msg.subject, payload, msg);
        msg.ack();
      } catch (err) {
        log.error({ subject: msg.subject, seq: msg.seq, err: (err as Error).message }, 'event handler failed; redelivering later');
        msg.nak(1000);
      }
    }
  })();
  return {
    async stop() {
      await messages.close();
      await loop;
    },
  };
}

import { AckPolicy, DeliverPolicy, JetStreamApiError, StorageType, jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { TSchema } from '@sinclair/typebox';
import type { Logger } from '@homelab/logging';
import { GatewayError } from './errors.ts';
import { H, createHeaders } from './headers.ts';
import { ReplyMux } from './requester.ts';
import { encodeJson, validator, type Validator } from './schemas.ts';
import { Streams, Subjects, type EventKey, type EventPayload, type StreamSpec, type SubjectSpec } from './subjects.ts';

const DAY_NS = 24 * 3600 * 1e9;

/**
 * Creates the project's streams, or updates them when their subjects changed. Every service that
 * publishes or consumes events calls it at start, so start order does not matter.
 */
export async function ensureStreams(nc: NatsConnection, options: { replicas?: number; streams?: StreamSpec[] } = {}): Promise<void> {
  const jsm = await jetstreamManager(nc);
  for (const spec of options.streams ?? Streams) {
    const config = {
      name: spec.name, subjects: spec.subjects, description: spec.description, storage: StorageType.File,
      max_age: spec.maxAgeDays * DAY_NS, num_replicas: options.replicas ?? 1, duplicate_window: 120 * 1e9,
    };
    try {
      const info = await jsm.streams.info(spec.name);
      const same = info.config.subjects?.length === spec.subjects.length && spec.subjects.every((s) => info.config.subjects?.includes(s));
      if (!same) await jsm.streams.update(spec.name, { ...info.config, subjects: spec.subjects });
    } catch (err) {
      if (!isNotFound(err)) throw streamError(spec, options.replicas, err);
      try {
        await jsm.streams.add(config);
      } catch (addErr) {
        throw streamError(spec, options.replicas, addErr);
      }
    }
  }
}

function isNotFound(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.status === 404;
}

function streamError(spec: StreamSpec, replicas: number | undefined, err: unknown): Error {
  const message = (err as Error).message;
  if (/replicas|peer|insufficient resources/i.test(message) && (replicas ?? 1) > 1) {
    return new Error(`stream ${spec.name}: ${replicas} replicas asked but the NATS cluster cannot place them (${message}); lower nats.replicas in the lab config to at most the number of JetStream servers`, { cause: err });
  }
  return new Error(`stream ${spec.name}: ${message}`, { cause: err });
}

/** Publishes events to JetStream. Awaiting the publish means the event is stored (the server acked it). */
export class EventPublisher {
  readonly #nc: NatsConnection;
  readonly #mux: ReplyMux;

  constructor(nc: NatsConnection) {
    this.#nc = nc;
    // The connection's own inbox prefix: nats.conf lets each service read only its own inboxes.
    this.#mux = new ReplyMux(nc, (nc as NatsConnection & { options?: { inboxPrefix?: string } }).options?.inboxPrefix ?? '_INBOX');
  }

  /**
   * A JetStream publish with the ack collected on this process's reply mux (no per-publish
   * subscription, timer or Error object). `msgId` makes a retried publish a no-op on the server
   * (its duplicate window), so retrying after a lost ack never stores an event twice.
   */
  async publish<K extends EventKey>(key: K, payload: EventPayload<K>, options: { msgId?: string; subject?: string; traceparent?: string } = {}): Promise<void> {
    const headers = createHeaders();
    if (options.traceparent) headers.set(H.traceparent, options.traceparent);
    if (options.msgId) headers.set('Nats-Msg-Id', options.msgId);
    const spec: SubjectSpec = Subjects[key];
    const subject = options.subject ?? spec.subject;
    const data = encodeJson(payload);
    const deadline = Date.now() + PUBLISH_RETRY_MS;
    for (let attempt = 1; ; attempt++) {
      try {
        const ack = await this.#mux.request(this.#nc, subject, data, { headers, timeoutMs: 5000 });
        const body = ack.data.length ? (JSON.parse(decoder.decode(ack.data)) as { error?: { description?: string; code?: number } }) : {};
        if (body.error) throw new Error(`JetStream refused the event on ${subject}: ${body.error.description ?? body.error.code}`);
        return;
      } catch (err) {
        // No stream leader now (no responders: the stream is not created yet, or a server of a cluster
        // died and its streams elect new leaders, a few seconds) or a lost ack: retry with the same
        // msg id until the deadline; a refusal is final.
        if (Date.now() >= deadline || !(err instanceof GatewayError)) throw err;
        await new Promise((r) => setTimeout(r, Math.min(200 * attempt, 1000)));
      }
    }
  }
}

const decoder = new TextDecoder();
/** How long a publish keeps retrying: longer than a JetStream cluster takes to elect a stream's new leader. */
const PUBLISH_RETRY_MS = 15_000;

const validators = new Map<string, Validator<unknown>>();
/** The validator of an event subject, matching the subject map's patterns (`*` = one token, `>` = the rest). */
export function eventValidator(subject: string): Validator<unknown> | undefined {
  const cached = validators.get(subject);
  if (cached) return cached;
  for (const spec of Object.values(Subjects) as SubjectSpec[]) {
    if (spec.kind !== 'event' || !spec.schema || !subjectMatches(spec.subject, subject)) continue;
    const v = validator(spec.schema as TSchema);
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
  const jsm = await jetstreamManager(nc);
  const config = {
    durable_name: durable, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, ack_wait: 30 * 1e9, max_deliver: 10,
    // nats-server 2.9 (Debian 12) knows only the singular filter; several need 2.10.
    ...(options.filterSubjects?.length === 1 && { filter_subject: options.filterSubjects[0] }),
    ...(options.filterSubjects && options.filterSubjects.length > 1 && { filter_subjects: options.filterSubjects }),
  };
  try {
    await jsm.consumers.info(stream, durable);
    await jsm.consumers.update(stream, durable, config);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await jsm.consumers.add(stream, config);
  }
  const consumer = await jetstream(nc).consumers.get(stream, durable);
  const messages = await consumer.consume({ max_messages: 256 });
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

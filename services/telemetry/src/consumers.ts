import {
  HealthSnapshotSchema, MediaStatusSchema, Streams, Subjects, consumeEvents, errorFromReply, subjectMatches, validator,
  type EventKey, type EventPayload, type NatsConnection, type SubjectSpec,
} from '@homelab/bus';
import type { Logger } from '@homelab/logging';
import type { MediaEventKey, TelemetryMetrics } from './metrics.ts';

/** What each event does to the metrics. A new event kind is one more line here. */
export type EventHandlers = { [K in EventKey]?: (payload: EventPayload<K>) => void };

export function eventHandlers(metrics: TelemetryMetrics): EventHandlers {
  const handlers: EventHandlers = {
    inferenceCompleted: (e) => metrics.applyInferenceEvent(e),
    circuitChanged: (e) => metrics.applyCircuitEvent(e),
    healthChanged: (e) => metrics.applyHealthEvent(e),
    healthProbe: (e) => metrics.applyHealthEvent(e),
    imageSubmitted: (e) => metrics.images.submitted(e),
    imageStarted: (e) => metrics.images.started(e),
    // Progress is for the requester and the CLI; the duration and steps per second come with the end.
    imageProgress: () => undefined,
    imageCompleted: (e) => metrics.images.completed(e),
    imageFailed: (e) => metrics.images.failed(e),
    imageCancelled: (e) => metrics.images.cancelled(e),
  };
  // Every media event goes to the media metrics, which know each kind.
  for (const key of eventKeys()) {
    if (!key.startsWith('media')) continue;
    const mediaKey = key as MediaEventKey;
    (handlers as Record<string, (p: unknown) => void>)[mediaKey] = (e) => metrics.applyMediaEvent(mediaKey, e as EventPayload<typeof mediaKey>);
  }
  return handlers;
}

function eventKeys(): EventKey[] {
  return (Object.keys(Subjects) as (keyof typeof Subjects)[]).filter((k) => (Subjects[k] as SubjectSpec).kind === 'event') as EventKey[];
}

/** The durable consumer of each stream: the server remembers what telemetry acked, across restarts. */
export function durableName(stream: string): string {
  return `telemetry-${stream.toLowerCase().replace(/_/g, '-')}`;
}

/** The event a subject of a stream is (subjects like `health.<node>.<service>` are patterns); cached per subject. */
export function eventKeyResolver(stream: string): (subject: string) => EventKey | undefined {
  const candidates = eventKeys().filter((k) => (Subjects[k] as SubjectSpec).stream === stream);
  const cache = new Map<string, EventKey | undefined>();
  return (subject) => {
    if (cache.has(subject)) return cache.get(subject);
    const key = candidates.find((k) => subjectMatches(Subjects[k].subject, subject));
    if (cache.size < 10_000) cache.set(subject, key);
    return key;
  };
}

export interface StartConsumersOptions {
  nc: NatsConnection;
  log: Logger;
  metrics: TelemetryMetrics;
  /** Stream names (default: every stream of the subject map). */
  streams?: string[];
}

/**
 * One durable pull consumer per stream. An event is acked after its metrics were updated, so
 * events published while telemetry was down are counted when it comes back, and an event that
 * fails validation is counted as invalid and dropped (never redelivered).
 */
export async function startConsumers(options: StartConsumersOptions): Promise<{ stop(): Promise<void> }> {
  const { nc, log, metrics } = options;
  const handlers = eventHandlers(metrics);
  const running: { stop(): Promise<void> }[] = [];
  try {
    for (const stream of options.streams ?? Streams.filter((s) => s.retention !== 'workqueue').map((s) => s.name)) {
      const keyOf = eventKeyResolver(stream);
      const applied = new AppliedSequences();
      running.push(await consumeEvents({
        nc, log, stream, durable: durableName(stream),
        handler: (subject, payload, msg) => {
          // JetStream delivers at least once: a redelivery after an ack lost in a failover is counted once.
          if (applied.has(msg.seq)) return;
          const key = keyOf(subject);
          const handler = key ? (handlers[key] as ((p: unknown) => void) | undefined) : undefined;
          if (!key || !handler) { metrics.countEvent(stream, key ?? 'unknown', 'ignored'); return; }
          try {
            handler(payload);
          } catch (err) {
            metrics.countEvent(stream, key, 'failed');
            throw err;
          }
          metrics.countEvent(stream, key, 'applied');
          applied.add(msg.seq);
        },
        onInvalid: (subject) => metrics.countEvent(stream, keyOf(subject) ?? 'unknown', 'invalid'),
      }));
      log.info({ stream, durable: durableName(stream) }, 'consuming');
    }
  } catch (err) {
    await Promise.allSettled(running.map((r) => r.stop()));
    throw err;
  }
  return {
    async stop() {
      await Promise.allSettled(running.map((r) => r.stop()));
    },
  };
}

/**
 * Gauges (health states, queue sizes, storage) start from the current snapshots of the health and
 * media services, so a restarted telemetry shows them at once rather than at the next change or
 * heartbeat. Best effort: a service that is not running is skipped.
 */
export async function primeFromSnapshots(nc: NatsConnection, metrics: TelemetryMetrics, log: Logger, timeoutMs = 3000): Promise<void> {
  const ask = async <T>(subject: string, check: { parse(v: unknown): T }): Promise<T | undefined> => {
    try {
      const reply = await nc.request(subject, undefined, { timeout: timeoutMs });
      const error = errorFromReply(reply.headers, reply.data);
      if (error) throw error;
      return check.parse(reply.json());
    } catch (err) {
      log.info({ subject, err: (err as Error).message }, 'no snapshot to start from');
      return undefined;
    }
  };
  const [health, media] = await Promise.all([
    ask(Subjects.healthStatus.subject, validator(HealthSnapshotSchema)),
    ask(Subjects.mediaStatus.subject, validator(MediaStatusSchema)),
  ]);
  if (health) metrics.applyHealthSnapshot(health);
  if (media) metrics.applyMediaStatus(media);
}

/** Stream sequences applied lately (the last 10,000 or so): enough to recognise a redelivery. */
export class AppliedSequences {
  readonly #seqs = new Set<number>();
  #highest = 0;

  has(seq: number): boolean {
    return this.#seqs.has(seq);
  }

  add(seq: number): void {
    this.#seqs.add(seq);
    if (seq > this.#highest) this.#highest = seq;
    if (this.#seqs.size > 12_000) for (const s of this.#seqs) if (s < this.#highest - 10_000) this.#seqs.delete(s);
  }
}

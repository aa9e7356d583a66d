import { JetStreamApiError, jetstreamManager, type ConsumerConfig } from '@nats-io/jetstream';
import { Kvm, type KV, type KvOptions } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';

/** How long a JetStream API call at start-up is retried while a cluster cannot answer it yet. */
const RETRY_MS = 30_000;

/**
 * How long a replicated stream's placement is retried: a cluster still forming has too few peers for
 * a moment (on a busy 2-core machine, servers started together took more than 10 s to know each other).
 * Past it, the cluster is taken to be smaller than the replicas asked.
 */
const PLACEMENT_RETRY_MS = 20_000;

export interface RetryOptions {
  /** Also retry "no suitable peers" (a replicated stream or bucket being placed), for a shorter while. */
  placement?: boolean;
  /** How long to keep trying; 30 s unless told. */
  budgetMs?: number;
}

/**
 * A JetStream API call that a cluster may leave unanswered for a few seconds (its servers starting, a
 * leader being elected after one died, a busy machine creating R3 streams for several services at
 * once): retried on timeouts and "temporarily unavailable" until the budget is spent. Any other answer
 * (not found, a refusal) is final at once. Used for what a service sets up at start (its streams,
 * consumers and buckets), where waiting is right and exiting would only make the supervisor restart it.
 * The calls are idempotent: a create that timed out but happened is found existing on the next try.
 */
export async function retryJetStreamApi<T>(call: () => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const started = Date.now();
  const deadline = started + (options.budgetMs ?? RETRY_MS);
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      const placing = options.placement === true && isPlacementRefusal(err) && Date.now() - started < PLACEMENT_RETRY_MS;
      if ((!isTransient(err) && !placing) || Date.now() >= deadline) throw err;
      await new Promise((r) => setTimeout(r, Math.min(250 * attempt, 2000)));
    }
  }
}

/**
 * Opens a KV bucket, making it when missing (every service that uses one may be the first to start),
 * retried as above; a replicated one's placement too.
 */
export function createKvBucket(nc: NatsConnection, name: string, options: Partial<KvOptions> & { replicas: number }): Promise<KV> {
  return retryJetStreamApi(() => new Kvm(nc).create(name, options), { placement: options.replicas > 1 });
}

/** Creates a durable consumer, or brings an existing one to `config` (a changed filter, ack wait, batch), retried as above. */
export async function ensureDurableConsumer(nc: NatsConnection, stream: string, config: Partial<ConsumerConfig> & { durable_name: string }): Promise<void> {
  const jsm = await retryJetStreamApi(() => jetstreamManager(nc));
  try {
    await retryJetStreamApi(() => jsm.consumers.info(stream, config.durable_name));
    await retryJetStreamApi(() => jsm.consumers.update(stream, config.durable_name, config));
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await retryJetStreamApi(() => jsm.consumers.add(stream, config));
  }
}

/** The API's "not found" (a stream, a consumer): an answer, never retried. */
export function isNotFound(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.status === 404;
}

function isTransient(err: unknown): boolean {
  if (err instanceof JetStreamApiError) return err.status === 503 || /temporarily unavailable/i.test(err.message);
  const e = err as { name?: string; message?: string };
  return e.name === 'TimeoutError' || /timeout|no responders/i.test(e.message ?? '');
}

function isPlacementRefusal(err: unknown): boolean {
  return /no suitable peers|insufficient resources/i.test((err as Error).message);
}

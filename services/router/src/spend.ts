import { DeliverPolicy, jetstream } from '@nats-io/jetstream';
import { Subjects, eventValidator, retryJetStreamApi, type InferenceCompleted, type NatsConnection } from '@homelab/bus';
import type { Logger } from '@homelab/logging';
import { isCloudProvider, type RoutingConfig } from '@homelab/config';

export interface Usage { provider: string; model: string; inputTokens?: number; outputTokens?: number }

/**
 * Estimated cost of one request in USD from the price table (per million tokens), by
 * `provider/model`, then `provider/*`. Local backends cost nothing unless priced.
 */
export function estimateCostUsd(usage: Usage, prices: RoutingConfig['prices']): number {
  const price = prices[`${usage.provider}/${usage.model}`] ?? prices[`${usage.provider}/*`];
  if (!price) return 0;
  return ((usage.inputTokens ?? 0) * price.input + (usage.outputTokens ?? 0) * price.output) / 1e6;
}

/** Today's cloud spend (UTC day), fed with every finished request; resets at midnight UTC. */
export class SpendTracker {
  readonly #prices: RoutingConfig['prices'];
  readonly #now: () => number;
  #day = '';
  #spentUsd = 0;

  constructor(prices: RoutingConfig['prices'], now: () => number = Date.now) {
    this.#prices = prices;
    this.#now = now;
  }

  /** Adds a finished request (from an `inference.completed` event), if it happened today. */
  add(usage: Usage, finishedAt: string | number): void {
    if (!isCloudProvider(usage.provider)) return;
    const day = new Date(finishedAt).toISOString().slice(0, 10);
    this.#roll();
    if (day !== this.#day) return;
    this.#spentUsd += estimateCostUsd(usage, this.#prices);
  }

  get spentTodayUsd(): number {
    this.#roll();
    return this.#spentUsd;
  }

  /** Midnight UTC starting today: where to replay events from at start. */
  startOfDay(): Date {
    return new Date(`${new Date(this.#now()).toISOString().slice(0, 10)}T00:00:00Z`);
  }

  #roll(): void {
    const today = new Date(this.#now()).toISOString().slice(0, 10);
    if (today !== this.#day) {
      this.#day = today;
      this.#spentUsd = 0;
    }
  }
}

/**
 * Feeds a SpendTracker from the INFERENCE stream: today's events first (so a router that restarts
 * knows what was already spent, and every replica agrees), then each new one as it comes.
 */
export async function followSpend(nc: NatsConnection, tracker: SpendTracker, log: Logger): Promise<{ stop(): Promise<void> }> {
  const consumer = await retryJetStreamApi(() => jetstream(nc).consumers.get('INFERENCE', {
    filter_subjects: Subjects.inferenceCompleted.subject, deliver_policy: DeliverPolicy.StartTime, opt_start_time: tracker.startOfDay().toISOString(),
  }));
  // Today's events are replayed before the router takes requests: a restarted router must not
  // spend a budget that is already spent.
  let pending = (await consumer.info()).num_pending;
  let caughtUp: () => void = () => {};
  const ready = new Promise<void>((resolve) => { caughtUp = resolve; });
  if (pending === 0) caughtUp();
  const messages = await consumer.consume();
  const check = eventValidator(Subjects.inferenceCompleted.subject);
  const loop = (async () => {
    for await (const m of messages) {
      if (--pending <= 0) caughtUp();
      try {
        const event = check!.parse(m.json()) as InferenceCompleted;
        if (event.backend && event.model) tracker.add({ provider: event.backend, model: event.model, ...(event.inputTokens !== undefined && { inputTokens: event.inputTokens }), ...(event.outputTokens !== undefined && { outputTokens: event.outputTokens }) }, event.finishedAt);
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'spend: invalid inference.completed skipped');
      }
    }
  })();
  await Promise.race([ready, new Promise((r) => setTimeout(r, 10_000))]);
  return { async stop() { await messages.close(); await loop; } };
}

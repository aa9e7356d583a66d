import { DeliverPolicy, jetstream } from '@nats-io/jetstream';
import { HealthBook, Subjects, errorFromReply, validator, HealthSnapshotSchema, HealthChangedSchema, type NatsConnection } from '@homelab/bus';
import type { LabConfig } from '@homelab/config';
import type { Logger } from '@homelab/logging';
import type { Provider } from './resolve.ts';

const checkSnapshot = validator(HealthSnapshotSchema);
const checkChange = validator(HealthChangedSchema);
const RETRY_MS = 15_000;

/**
 * What the health service says of the local backends: the `health.status` snapshot at start, then
 * every `health.<node>.<service>` change from the HEALTH stream (an ordered consumer per router, so
 * every replica hears every change). Without a health service, nothing is ever reported down and
 * the router relies on its own signals (failures, circuit breakers).
 */
export class HealthView {
  readonly book = new HealthBook();
  readonly #refs: Partial<Record<Provider, string>>;
  readonly #nc: NatsConnection;
  readonly #log: Logger;
  #stopped = false;
  #stopFeed: (() => Promise<void>) | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(nc: NatsConnection, config: LabConfig, log: Logger) {
    this.#nc = nc;
    this.#log = log;
    this.#refs = { ...(config.backends.vllm && { vllm: config.backends.vllm.service }), ...(config.backends.ollama && { ollama: config.backends.ollama.service }) };
  }

  /** The health service reports this backend's service down. Cloud backends have no health target. */
  isDown = (provider: Provider): boolean => {
    const ref = this.#refs[provider];
    return ref !== undefined && !this.book.usable(ref);
  };

  start(): void {
    void this.#connect();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#stopFeed?.();
  }

  async #connect(): Promise<void> {
    if (this.#stopped) return;
    const since = new Date(Date.now() - 60_000);
    try {
      const reply = await this.#nc.request(Subjects.healthStatus.subject, undefined, { timeout: 3000 });
      const error = errorFromReply(reply.headers, reply.data);
      if (error) throw error;
      this.book.applySnapshot(checkSnapshot.parse(reply.json()));
    } catch (err) {
      this.#log.info({ err: (err as Error).message }, 'no health snapshot yet; following health events only');
    }
    try {
      // Events since a minute before the snapshot: the book keeps the newest of each, so overlap is harmless.
      const consumer = await jetstream(this.#nc).consumers.get('HEALTH', {
        filter_subjects: Subjects.healthChanged.subject, deliver_policy: DeliverPolicy.StartTime, opt_start_time: since.toISOString(),
      });
      const messages = await consumer.consume();
      const loop = (async () => {
        for await (const m of messages) {
          try {
            const change = checkChange.parse(m.json());
            this.book.applyEvent(change);
            if (Object.values(this.#refs).some((ref) => ref.replace('/', '.') === change.key)) {
              this.#log.info({ target: change.key, state: change.state, previous: change.previous }, 'backend health changed');
            }
          } catch (err) {
            this.#log.warn({ subject: m.subject, err: (err as Error).message }, 'invalid health event skipped');
          }
        }
      })();
      this.#stopFeed = async () => { await messages.close(); await loop; };
    } catch (err) {
      // No HEALTH stream yet (the health service never ran): look again later.
      this.#log.info({ err: (err as Error).message }, 'health events not available; retrying');
      this.#timer = setTimeout(() => void this.#connect(), RETRY_MS);
      this.#timer.unref();
    }
  }
}

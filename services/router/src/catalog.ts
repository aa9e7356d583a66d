import { WorkerModelsReply, validator, workerSubject, type ModelEntry, type ModelList, type NatsConnection } from '@homelab/bus';
import type { LabConfig } from '@homelab/config';
import type { Logger } from '@homelab/logging';
import { PROVIDERS, type Provider } from '@homelab/config';
import type { ModelView } from './resolve.ts';

const checkReply = validator(WorkerModelsReply);

/** A model a backend serves now, with what else its worker reported of it (Ollama's size, digest, details, …). */
interface Served { id: string; created?: number; loaded?: boolean; [fact: string]: unknown }


/**
 * What each backend serves now, asked of its workers (`worker.<provider>.models`) on an interval.
 * The router never talks HTTP to a backend itself: the workers do, next to it.
 */
export class ModelCatalog implements ModelView {
  readonly #served = new Map<Provider, Served[]>();
  readonly #nc: NatsConnection;
  readonly #config: LabConfig;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | undefined;
  readonly #warned = new Set<Provider>();
  readonly #pending = new Set<Provider>();
  /** Backends asked at least once and answered (models, or an error: a backend that is down is an answer). */
  readonly #asked = new Set<Provider>();
  readonly #noWorkerGraceMs: number;
  #startedAt = 0;
  #firstRoundDone: () => void = () => {};
  readonly #firstRound = new Promise<void>((resolve) => { this.#firstRoundDone = resolve; });

  constructor(nc: NatsConnection, config: LabConfig, log: Logger) {
    this.#nc = nc;
    this.#config = config;
    this.#log = log;
    // Without any worker (no responders) a backend holds the first round back this long: at start
    // the workers may still be starting. Past it, it counts as asked (no models yet).
    this.#noWorkerGraceMs = config.firstDiscoveryWaitMs;
  }

  /**
   * Resolves once every configured backend has been asked and answered once: its models, or an
   * error (a backend that is down does not hold readiness back). A backend whose workers do not
   * answer yet holds it back up to `inference.firstDiscoveryWaitMs`, so the first requests after start do not get
   * `model_not_found` for a model that is there. The router announces itself on `$SRV` after this.
   */
  firstRound(): Promise<void> {
    return this.#firstRound;
  }

  #configured(): Provider[] {
    return PROVIDERS.filter((p) => this.#config.backends[p]);
  }

  #markAsked(provider: Provider): void {
    this.#asked.add(provider);
    if (this.#configured().every((p) => this.#asked.has(p))) this.#firstRoundDone();
  }

  served(provider: Provider): readonly Served[] | undefined {
    return this.#served.get(provider);
  }

  /**
   * Asks every `discoveryIntervalMs`, and every second while a backend has no known list yet,
   * so a router that starts before its workers learns their models as soon as they answer.
   */
  start(): void {
    this.#startedAt = Date.now();
    if (this.#configured().length === 0) this.#firstRoundDone();
    const due = new Map<Provider, number>();
    const tick = (): void => {
      const now = Date.now();
      for (const p of PROVIDERS) {
        if (!this.#config.backends[p] || this.#pending.has(p)) continue;
        if (this.#served.has(p) && (due.get(p) ?? 0) > now) continue;
        due.set(p, now + this.#config.discoveryIntervalMs);
        this.#pending.add(p);
        void this.#refreshOne(p).finally(() => this.#pending.delete(p));
      }
    };
    tick();
    this.#timer = setInterval(tick, Math.min(1000, this.#config.discoveryIntervalMs));
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  async refresh(): Promise<void> {
    await Promise.all(PROVIDERS.filter((p) => this.#config.backends[p]).map((p) => this.#refreshOne(p)));
  }

  async #refreshOne(provider: Provider): Promise<void> {
    try {
      const reply = await this.#nc.request(workerSubject(provider, 'models'), undefined, { timeout: 5000 });
      if (reply.headers?.get('Nats-Service-Error-Code')) throw new Error(reply.headers.get('Nats-Service-Error'));
      const parsed = checkReply.parse(JSON.parse(reply.string()));
      this.#served.set(provider, parsed.models);
      this.#warned.delete(provider);
      this.#markAsked(provider);
    } catch (err) {
      // Keep the last known list: a worker restarting is not a backend losing its models.
      const noWorker = (err as { name?: string }).name === 'NoRespondersError' || /no responders/i.test(String((err as Error).message));
      if (noWorker) this.#served.delete(provider);
      const starting = noWorker && Date.now() - this.#startedAt < this.#noWorkerGraceMs;
      // Workers starting alongside the router are not a failure worth a warning.
      if (!starting && !this.#warned.has(provider)) {
        this.#log.warn({ provider, err: (err as Error).message }, 'model discovery failed');
        this.#warned.add(provider);
      }
      if (!starting) this.#markAsked(provider);
    }
  }

  /** `GET /v1/models`: discovered local models, configured cloud models and aliases. */
  list(): ModelList {
    const now = Math.floor(Date.now() / 1000);
    const data: (ModelEntry & Record<string, unknown>)[] = [];
    const seen = new Set<string>();
    const add = (entry: ModelEntry & Record<string, unknown>): void => { if (!seen.has(entry.id)) { seen.add(entry.id); data.push(entry); } };
    for (const provider of PROVIDERS) {
      const backend = this.#config.backends[provider];
      if (!backend) continue;
      const served: readonly Served[] = this.#served.get(provider) ?? ('models' in backend ? backend.models.map((id) => ({ id })) : []);
      for (const { id, created, loaded, ...facts } of served) {
        add({ ...facts, id, object: 'model', created: created ?? now, owned_by: provider, ...(loaded !== undefined && { loaded }) });
      }
    }
    for (const [alias, candidates] of Object.entries(this.#config.aliases)) {
      const first = candidates.find((c) => this.#config.backends[c.split('/')[0] as Provider]);
      add({ id: alias, object: 'model', created: now, owned_by: first ? first.split('/')[0]! : 'homelab', alias_of: candidates });
    }
    return { object: 'list', data };
  }
}

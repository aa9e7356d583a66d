import type { Attributes, Counter, Gauge, Histogram, Meter } from '@opentelemetry/api';
import type { CircuitChanged, InferenceCompleted } from '@homelab/bus';
import { costUsd, type PriceTable } from './cost.ts';
import { LabelBudget, parseRoute } from './labels.ts';
import {
  CircuitValue, ERROR_TYPE_OTHER, GatewayAttr, GatewayMetric, GenAiAttr, GenAiBuckets, GenAiMetric, OverheadBuckets, TelemetryAttr, TokenType,
} from './semconv.ts';

export interface InferenceMetricsOptions {
  /** `routing.prices`: USD per million tokens. Missing: every request costs 0. */
  prices?: PriceTable;
  /** Model names known from the config (aliases, their candidates, cloud model lists): always labels. */
  knownModels?: Iterable<string>;
  /** Most distinct model names as labels; later ones become `_other`. */
  maxModels?: number;
  /** Configured backends: their circuit gauge starts `closed` (every router starts that way). */
  backends?: Iterable<string>;
}

/** A router that has not reported for this long is forgotten (a replica that stopped keeps no circuit open). */
const ROUTER_TTL_MS = 3600_000;
const MAX_ROUTERS = 16;
/** Route kinds whose requested model name the router matched against the config or discovery. */
const TRUSTED_ROUTES = new Set(['alias', 'discovered', 'configured']);

/**
 * The inference path's metrics, fed with `inference.completed` and `inference.circuit` events:
 * the GenAI semantic conventions' four histograms, and the gateway's own counters.
 */
export class InferenceMetrics {
  readonly #tokenUsage: Histogram;
  readonly #duration: Histogram;
  readonly #ttft: Histogram;
  readonly #tpot: Histogram;
  readonly #requests: Counter;
  readonly #fallbacks: Counter;
  readonly #retries: Counter;
  readonly #skips: Counter;
  readonly #overhead: Histogram;
  readonly #cost: Counter;
  readonly #circuitState: Gauge;
  readonly #inFlight: Gauge;
  readonly #processFaults: Gauge;
  readonly #circuitTransitions: Counter;
  readonly #models: LabelBudget;
  readonly #errorTypes = new LabelBudget(64);
  /** The APIs clients speak: a handful (libs/dialects), bounded all the same. */
  readonly #dialects = new LabelBudget(32);
  readonly #prices: PriceTable;
  readonly #routers = new Map<string, Map<string, { state: CircuitChanged['state']; at: number }>>();

  constructor(meter: Meter, options: InferenceMetricsOptions = {}) {
    this.#prices = options.prices ?? {};
    this.#models = new LabelBudget(options.maxModels ?? 200, { seed: options.knownModels ?? [] });
    this.#tokenUsage = meter.createHistogram(GenAiMetric.tokenUsage, {
      unit: '{token}', description: 'Number of input and output tokens used per request.',
      advice: { explicitBucketBoundaries: [...GenAiBuckets.tokenUsage] },
    });
    this.#duration = meter.createHistogram(GenAiMetric.operationDuration, {
      unit: 's', description: 'Duration of each request through the gateway, from the router receiving it to the answer\'s end.',
      advice: { explicitBucketBoundaries: [...GenAiBuckets.operationDuration] },
    });
    this.#ttft = meter.createHistogram(GenAiMetric.timeToFirstToken, {
      unit: 's', description: 'Time to the first content token of a successful streamed answer, as the worker saw it from the backend.',
      advice: { explicitBucketBoundaries: [...GenAiBuckets.timeToFirstToken] },
    });
    this.#tpot = meter.createHistogram(GenAiMetric.timePerOutputToken, {
      unit: 's', description: 'Time per output token after the first, of a successful streamed answer.',
      advice: { explicitBucketBoundaries: [...GenAiBuckets.timePerOutputToken] },
    });
    this.#requests = meter.createCounter(GatewayMetric.requests, {
      unit: '{request}', description: 'Finished requests by backend, model, how the model was resolved, fallback and outcome.',
    });
    this.#fallbacks = meter.createCounter(GatewayMetric.fallbacks, {
      unit: '{fallback}', description: 'Hand-overs of a request from one backend to another after a failure before the first token.',
    });
    this.#retries = meter.createCounter(GatewayMetric.retries, {
      unit: '{retry}', description: 'Retries of a request on the same backend after a failure before the first token.',
    });
    this.#skips = meter.createCounter(GatewayMetric.routeSkips, {
      unit: '{candidate}', description: 'Candidates the router left out of a request, and why (down, circuit open, saturated, budget, …).',
    });
    this.#overhead = meter.createHistogram(GatewayMetric.overhead, {
      unit: 's', description: 'The gateway\'s own time per request: total time minus the time spent waiting on the backend.',
      advice: { explicitBucketBoundaries: OverheadBuckets },
    });
    this.#cost = meter.createCounter(GatewayMetric.cost, {
      unit: 'USD', description: 'Estimated cost of the requests from their tokens and the price table (routing.prices).',
    });
    this.#circuitState = meter.createGauge(GatewayMetric.circuitState, {
      unit: '1', description: 'Circuit breaker of each backend, the worst among the routers: 0 closed, 1 half-open, 2 open.',
    });
    this.#circuitTransitions = meter.createCounter(GatewayMetric.circuitTransitions, {
      unit: '{transition}', description: 'Circuit breaker state changes by backend and the state entered.',
    });
    this.#inFlight = meter.createGauge(GatewayMetric.inFlight, {
      unit: '{request}', description: 'Requests the workers of each backend are answering now (from their $SRV.STATS, every 5 s).',
    });
    this.#processFaults = meter.createGauge(GatewayMetric.processFaults, {
      unit: '{fault}', description: 'Faults that escaped a request and were survived (bugs: each is logged with its stack), per service since its processes started.',
    });
    for (const backend of options.backends ?? []) this.#circuitState.record(CircuitValue.closed, { [GenAiAttr.providerName]: backend });
  }

  /** The workers' in-flight counts by backend, and each service's escaped faults, from a `$SRV.STATS` round (see inflight.ts). */
  recordInFlight(byProvider: ReadonlyMap<string, number>, faults: ReadonlyMap<string, number> = new Map()): void {
    for (const [provider, n] of byProvider) this.#inFlight.record(n, { [GenAiAttr.providerName]: provider });
    for (const [service, n] of faults) this.#processFaults.record(n, { [TelemetryAttr.service]: service });
  }

  /** Applies one `inference.completed` event. */
  apply(e: InferenceCompleted): void {
    const ok = e.status === 'ok';
    // A client that hung up is not a failure of the gateway: no error.type, its own status label.
    const failed = e.status === 'error';
    const provider = e.backend ?? 'none';
    const operation = e.operation === 'embeddings' ? 'embeddings' : 'chat';
    const route = parseRoute(e.routeReason);
    // A model name earns a label of its own only when it is known to be real: it served a request, or the router
    // resolved it as an alias, a discovered local model or a configured cloud one. A failed explicit or prefix
    // request (`vllm/<anything>`, `gpt-<anything>`) or a rejected one may carry whatever a client typed.
    const requestModel = this.#models.value(e.requestedModel, ok || TRUSTED_ROUTES.has(route.kind));
    const responseModelName = e.responseModel ?? e.model;
    const base: Attributes = {
      [GenAiAttr.operationName]: operation,
      [GenAiAttr.providerName]: provider,
      [GenAiAttr.requestModel]: requestModel,
    };
    if (ok && responseModelName) base[GenAiAttr.responseModel] = this.#models.value(responseModelName, true);
    const errorType = failed ? this.#errorTypes.value(e.errorType ?? ERROR_TYPE_OTHER) : undefined;

    this.#duration.record(e.latencyMs / 1000, errorType ? { ...base, [GenAiAttr.errorType]: errorType } : base);
    if (e.inputTokens !== undefined) this.#tokenUsage.record(e.inputTokens, { ...base, [GenAiAttr.tokenType]: TokenType.input });
    if (e.outputTokens !== undefined) this.#tokenUsage.record(e.outputTokens, { ...base, [GenAiAttr.tokenType]: TokenType.output });
    if (ok && e.stream && e.ttftMs !== undefined) {
      this.#ttft.record(e.ttftMs / 1000, base);
      if (e.backendMs !== undefined && e.outputTokens !== undefined && e.outputTokens > 1) {
        this.#tpot.record(Math.max(0, e.backendMs - e.ttftMs) / 1000 / (e.outputTokens - 1), base);
      }
    }
    if (e.overheadMs !== undefined) this.#overhead.record(e.overheadMs / 1000, { [GenAiAttr.providerName]: provider, [GenAiAttr.operationName]: operation });

    let fallback = false;
    for (let i = 0; i + 1 < route.attempts.length; i++) {
      const from = route.attempts[i]!;
      const to = route.attempts[i + 1]!;
      const reason = from.failure ?? 'unknown';
      if (from.provider === to.provider) this.#retries.add(1, { [GenAiAttr.providerName]: from.provider, [GatewayAttr.reason]: reason });
      else {
        fallback = true;
        this.#fallbacks.add(1, { [GatewayAttr.from]: from.provider, [GatewayAttr.to]: to.provider, [GatewayAttr.reason]: reason });
      }
    }
    for (const skip of route.skips) this.#skips.add(1, { [GenAiAttr.providerName]: skip.provider, [GatewayAttr.reason]: skip.reason });

    const requestAttrs: Attributes = {
      ...base,
      [GatewayAttr.route]: route.kind,
      [GatewayAttr.fallback]: fallback ? 'true' : 'false',
      [GatewayAttr.stream]: e.stream ? 'true' : 'false',
      [GatewayAttr.status]: e.status,
      // Events from before dialects were named are all OpenAI chat completions.
      [GatewayAttr.dialect]: this.#dialects.value(e.dialect ?? 'openai.chat', true),
    };
    if (errorType) requestAttrs[GenAiAttr.errorType] = errorType;
    this.#requests.add(1, requestAttrs);

    if (e.backend) {
      const usd = costUsd(e.backend, e.model, e.inputTokens ?? 0, e.outputTokens ?? 0, this.#prices);
      // Added even when 0, so every backend and model has a cost series (local ones stay at 0).
      this.#cost.add(usd, { [GenAiAttr.providerName]: e.backend, [GenAiAttr.responseModel]: this.#models.value(e.model ?? e.responseModel, ok) });
    }
  }

  /** Applies one `inference.circuit` event (a router's breaker for one backend changed state). */
  applyCircuit(e: CircuitChanged): void {
    const at = Date.parse(e.at) || Date.now();
    let routers = this.#routers.get(e.backend);
    if (!routers) this.#routers.set(e.backend, (routers = new Map()));
    const current = routers.get(e.router);
    if (!current || current.at <= at) routers.set(e.router, { state: e.state, at });
    this.#circuitTransitions.add(1, { [GenAiAttr.providerName]: e.backend, [GatewayAttr.state]: e.state });
    // Forget routers not heard of for an hour, and keep at most a handful per backend.
    const now = Date.now();
    for (const [id, r] of routers) if (now - r.at > ROUTER_TTL_MS) routers.delete(id);
    while (routers.size > MAX_ROUTERS) routers.delete(routers.keys().next().value!);
    let worst: number = CircuitValue.closed;
    for (const r of routers.values()) worst = Math.max(worst, CircuitValue[r.state]);
    this.#circuitState.record(worst, { [GenAiAttr.providerName]: e.backend });
  }
}

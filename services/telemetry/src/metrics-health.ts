import type { Attributes, Counter, Gauge, Histogram, Meter } from '@opentelemetry/api';
import type { HealthChanged, HealthProbeResult, HealthSnapshot, HealthState } from '@homelab/bus';
import { LabelBudget } from './labels.ts';
import { HealthAttr, HealthMetric, HealthValue, OTHER, ProbeBuckets } from './semconv.ts';

/**
 * The lab's health, fed with `health.<node>.<service>` (state changes), `health.probe.…` (every
 * probe) and, at start, the `health.status` snapshot. The state gauge takes the newest news only:
 * the two streams are read by separate consumers, and a replay must not move a target back.
 */
export class HealthMetrics {
  readonly #state: Gauge;
  readonly #since: Gauge;
  readonly #changes: Counter;
  readonly #probes: Counter;
  readonly #probeDuration: Histogram;
  readonly #latency: Gauge;
  readonly #targets: LabelBudget;
  readonly #lastAt = new Map<string, number>();

  constructor(meter: Meter, options: { maxTargets?: number } = {}) {
    this.#targets = new LabelBudget(options.maxTargets ?? 1000);
    this.#state = meter.createGauge(HealthMetric.state, {
      unit: '1', description: 'State of each node and service: 2 up, 1 degraded, 0 down, -1 unknown (not probed yet).',
    });
    this.#since = meter.createGauge(HealthMetric.stateSince, {
      unit: 's', description: 'When the target entered its current state (Unix time).',
    });
    this.#changes = meter.createCounter(HealthMetric.stateChanges, {
      unit: '{change}', description: 'State changes of each target, by the state entered and the one left.',
    });
    this.#probes = meter.createCounter(HealthMetric.probes, {
      unit: '{probe}', description: 'Probes run, by target and outcome (ok, degraded, fail).',
    });
    this.#probeDuration = meter.createHistogram(HealthMetric.probeDuration, {
      unit: 's', description: 'How long each probe took, by target and outcome.',
      advice: { explicitBucketBoundaries: ProbeBuckets },
    });
    this.#latency = meter.createGauge(HealthMetric.probeLatency, {
      unit: 's', description: 'Latency of the last probe of each target that measured one.',
    });
  }

  /** A state change (stream HEALTH). */
  applyChanged(e: HealthChanged): void {
    const attrs = this.#attrs(e);
    this.#changes.add(1, { ...attrs, [HealthAttr.state]: e.state, [HealthAttr.previous]: e.previous });
    this.#setState(e.key, attrs, e.state, e.since, e.since);
    if (e.latencyMs !== null) this.#latency.record(e.latencyMs / 1000, attrs);
  }

  /** One probe's result (stream HEALTH_PROBES). */
  applyProbe(e: HealthProbeResult): void {
    const attrs = this.#attrs(e);
    const withOutcome = { ...attrs, [HealthAttr.outcome]: e.outcome };
    this.#probes.add(1, withOutcome);
    if (e.latencyMs !== null) {
      this.#probeDuration.record(e.latencyMs / 1000, withOutcome);
      this.#latency.record(e.latencyMs / 1000, attrs);
    }
    this.#setState(e.key, attrs, e.state, e.at, undefined);
  }

  /** The `health.status` snapshot: every target's current state, read once at start. */
  applySnapshot(snapshot: Pick<HealthSnapshot, 'targets'>): void {
    for (const t of snapshot.targets) {
      const attrs = this.#attrs(t);
      this.#setState(t.key, attrs, t.state, t.lastCheck ?? t.since, t.since);
      if (t.latencyMs !== null) this.#latency.record(t.latencyMs / 1000, attrs);
    }
  }

  #attrs(e: { key: string; node: string; service: string; kind: string }): Attributes {
    if (this.#targets.value(e.key) === OTHER) return { [HealthAttr.node]: OTHER, [HealthAttr.service]: OTHER, [HealthAttr.kind]: OTHER };
    return { [HealthAttr.node]: e.node, [HealthAttr.service]: e.service, [HealthAttr.kind]: e.kind };
  }

  #setState(key: string, attrs: Attributes, state: HealthState, at: string, since: string | undefined): void {
    const t = Date.parse(at) || 0;
    if ((this.#lastAt.get(key) ?? -Infinity) > t) return;
    this.#lastAt.set(key, t);
    this.#state.record(HealthValue[state], attrs);
    if (since !== undefined) {
      const s = Date.parse(since);
      if (s) this.#since.record(s / 1000, attrs);
    }
  }
}

import type { Counter, Meter } from '@opentelemetry/api';
import { MeterProvider, type IMetricReader } from '@opentelemetry/sdk-metrics';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import type { CircuitChanged, EventPayload, HealthChanged, HealthProbeResult, HealthSnapshot, InferenceCompleted, MediaStatus } from '@homelab/bus';
import { CLOUD_PROVIDERS, type LabConfig } from '@homelab/config';
import { HealthMetrics } from './metrics-health.ts';
import { ImageMetrics } from './metrics-images.ts';
import { InferenceMetrics, type InferenceMetricsOptions } from './metrics-inference.ts';
import { MediaMetrics, type MediaEventKey } from './metrics-media.ts';
import { TelemetryAttr, TelemetryMetric } from './semconv.ts';

export type { MediaEventKey } from './metrics-media.ts';

export const METER_NAME = '@homelab/telemetry';

/** What applying an event came to, for `homelab_telemetry_events_total`. */
export type EventResult = 'applied' | 'invalid' | 'ignored' | 'failed';

/**
 * Every metric of the telemetry service, and the functions that turn one event into metric
 * updates. Pure of NATS: the consumers call these, and so do the unit tests (with an in-memory
 * exporter on the same MeterProvider). Each apply costs a few attribute objects and instrument
 * updates; nothing is kept per request.
 */
export class TelemetryMetrics {
  readonly inference: InferenceMetrics;
  readonly health: HealthMetrics;
  readonly media: MediaMetrics;
  readonly images: ImageMetrics;
  readonly #events: Counter;

  constructor(meter: Meter, options: InferenceMetricsOptions = {}) {
    this.inference = new InferenceMetrics(meter, options);
    this.health = new HealthMetrics(meter);
    this.media = new MediaMetrics(meter);
    this.images = new ImageMetrics(meter);
    this.#events = meter.createCounter(TelemetryMetric.events, {
      unit: '{event}', description: 'Events the telemetry service consumed, by stream, event and result (applied, invalid, ignored, failed).',
    });
  }

  applyInferenceEvent(event: InferenceCompleted): void {
    this.inference.apply(event);
  }

  applyCircuitEvent(event: CircuitChanged): void {
    this.inference.applyCircuit(event);
  }

  /** A state change (`health.<node>.<service>`) or a probe result (`health.probe.…`). */
  applyHealthEvent(event: HealthChanged | HealthProbeResult): void {
    if ('outcome' in event) this.health.applyProbe(event);
    else this.health.applyChanged(event);
  }

  applyHealthSnapshot(snapshot: Pick<HealthSnapshot, 'targets'>): void {
    this.health.applySnapshot(snapshot);
  }

  applyMediaEvent<K extends MediaEventKey>(key: K, event: EventPayload<K>): void {
    this.media.apply(key, event);
  }

  applyMediaStatus(status: MediaStatus): void {
    this.media.applyStatus(status);
  }

  countEvent(stream: string, event: string, result: EventResult): void {
    this.#events.add(1, { [TelemetryAttr.stream]: stream, [TelemetryAttr.event]: event, [TelemetryAttr.result]: result });
  }
}

/** The options the config gives: prices, the models it names, the backends it configures. */
export function metricsOptionsFromConfig(config: LabConfig): InferenceMetricsOptions {
  const models = new Set<string>();
  for (const [alias, candidates] of Object.entries(config.aliases)) {
    models.add(alias);
    for (const c of candidates) {
      const model = c.slice(c.indexOf('/') + 1);
      if (model !== '*') models.add(model);
    }
  }
  for (const provider of CLOUD_PROVIDERS) for (const m of config.backends[provider]?.models ?? []) models.add(m);
  return { prices: config.routing?.prices ?? {}, knownModels: models, backends: Object.keys(config.backends) };
}

/** The process's MeterProvider: resource `service.name=telemetry`, the given readers (Prometheus; in tests, in-memory). */
export function createMeterProvider(readers: IMetricReader[], version = '0.1.0'): MeterProvider {
  return new MeterProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: 'telemetry', [ATTR_SERVICE_VERSION]: version }),
    readers,
  });
}

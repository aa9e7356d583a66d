import { ROOT_CONTEXT, SpanKind, trace, type Tracer } from '@opentelemetry/api';
import {
  AlwaysOnSampler, BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler, TracerProvider, type Sampler,
} from '@opentelemetry/sdk-trace';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import { parseTraceparent } from './traceparent.ts';
import { hopOf, type Hop, type HopKind, type HopOptions, type InitTracingOptions, type Tracing } from './tracing.ts';

const KINDS: Record<HopKind, SpanKind> = {
  server: SpanKind.SERVER, client: SpanKind.CLIENT, internal: SpanKind.INTERNAL, producer: SpanKind.PRODUCER, consumer: SpanKind.CONSUMER,
};

/** Tracing with the OpenTelemetry SDK: loaded by `initTracing` only when tracing is on. */
export function sdkTracing(serviceName: string, options: InitTracingOptions & { env: Record<string, string | undefined>; otlpUrl?: string }): Tracing {
  const { env } = options;
  const processors = options.spanProcessors ?? [new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url: options.otlpUrl! }) })];
  const ratio = Number(env['OTEL_TRACES_SAMPLER_ARG']);
  const root: Sampler = env['OTEL_TRACES_SAMPLER_ARG'] !== undefined && ratio >= 0 && ratio < 1 ? new TraceIdRatioBasedSampler(ratio) : new AlwaysOnSampler();
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: serviceName, [ATTR_SERVICE_VERSION]: options.version ?? '0.1.0', 'service.namespace': 'homelab' }),
    sampler: new ParentBasedSampler({ root }),
    spanProcessors: processors,
  });
  const tracer = provider.getTracer('@homelab/tracing', options.version ?? '0.1.0');
  return {
    enabled: true,
    startHop: (name, hopOptions = {}) => recordingHop(tracer, name, hopOptions),
    forceFlush: () => provider.forceFlush(),
    shutdown: () => provider.shutdown(),
  };
}

function recordingHop(tracer: Tracer, name: string, options: HopOptions): Hop {
  const parent = parseTraceparent(options.traceparent);
  const ctx = parent ? trace.setSpanContext(ROOT_CONTEXT, parent) : ROOT_CONTEXT;
  const span = tracer.startSpan(name, {
    kind: KINDS[options.kind ?? 'internal'],
    ...(options.attributes && { attributes: options.attributes }),
    ...(options.startTime !== undefined && { startTime: options.startTime }),
  }, ctx);
  return hopOf(span, span.spanContext());
}


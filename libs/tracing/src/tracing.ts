import {
  ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Span, type SpanContext, type Tracer,
} from '@opentelemetry/api';
import {
  BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler, TracerProvider, AlwaysOnSampler, type Sampler, type SpanProcessor,
} from '@opentelemetry/sdk-trace';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import { childSpanContext, formatTraceparent, parseTraceparent } from './traceparent.ts';

export type HopKind = 'server' | 'client' | 'internal' | 'producer' | 'consumer';
const KINDS: Record<HopKind, SpanKind> = {
  server: SpanKind.SERVER, client: SpanKind.CLIENT, internal: SpanKind.INTERNAL, producer: SpanKind.PRODUCER, consumer: SpanKind.CONSUMER,
};

export interface HopOptions {
  /** The `traceparent` the request came with: this hop's span becomes its child. None: a new trace starts here. */
  traceparent?: string | null;
  kind?: HopKind;
  attributes?: Attributes;
  /** Epoch milliseconds, when the hop began before the span was started (e.g. the router's receive time). */
  startTime?: number;
}

/**
 * One hop of a request (ingress, router, worker, the backend call): a span, and the `traceparent`
 * to send downstream so the next hop's span is this one's child.
 */
export interface Hop {
  readonly span: Span;
  readonly traceId: string;
  /** Put this on the next NATS message (header `traceparent`). */
  readonly traceparent: string;
  setAttributes(attributes: Attributes): Hop;
  /** Marks the hop failed: status ERROR, `error.type` (a stable code, e.g. `backend_unavailable`), the exception as an event. */
  fail(error: unknown, errorType?: string): Hop;
  end(endTime?: number): void;
}

export interface Tracing {
  /** Whether spans are recorded and exported; when false every hop still passes a valid child traceparent on. */
  readonly enabled: boolean;
  startHop(name: string, options?: HopOptions): Hop;
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
}

export interface InitTracingOptions {
  /** Environment to read (default `process.env`). */
  env?: Record<string, string | undefined>;
  version?: string;
  /** Where spans go instead of OTLP (tests: a SimpleSpanProcessor on an InMemorySpanExporter). Turns tracing on. */
  spanProcessors?: SpanProcessor[];
}

/**
 * Tracing for one process. Off (no SDK, no exporter, nothing recorded) unless
 * `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; then spans are
 * batched to that collector over OTLP/HTTP. `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`
 * turn it off again; `OTEL_TRACES_SAMPLER_ARG` (0..1) samples new traces by ratio. A request's
 * `traceparent` decides for its hops (parent-based sampling), so one trace is whole or absent.
 * The global OpenTelemetry API is left alone: hops use this provider's tracer directly.
 */
export function initTracing(serviceName: string, options: InitTracingOptions = {}): Tracing {
  const env = options.env ?? process.env;
  const tracesEndpoint = env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'] || undefined;
  const endpoint = env['OTEL_EXPORTER_OTLP_ENDPOINT'] || undefined;
  const off = env['OTEL_SDK_DISABLED'] === 'true' || env['OTEL_TRACES_EXPORTER'] === 'none';
  let processors = options.spanProcessors;
  if (!processors) {
    if (off || (!tracesEndpoint && !endpoint)) return disabledTracing;
    const url = tracesEndpoint ?? `${endpoint!.replace(/\/+$/, '')}/v1/traces`;
    processors = [new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url }) })];
  }
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

function hopOf(span: Span, sc: SpanContext): Hop {
  const hop: Hop = {
    span,
    traceId: sc.traceId,
    traceparent: formatTraceparent(sc),
    setAttributes(attributes) {
      span.setAttributes(attributes);
      return hop;
    },
    fail(error, errorType) {
      const err = error instanceof Error ? error : new Error(String(error));
      const type = errorType ?? ((err as { code?: unknown }).code !== undefined ? String((err as { code?: unknown }).code) : err.name);
      span.setAttribute('error.type', type);
      span.recordException(err);
      span.setStatus({ code: SpanStatusCode.ERROR, message: err.message });
      return hop;
    },
    end(endTime) {
      span.end(endTime);
    },
  };
  return hop;
}

/** Tracing off: no spans, but each hop still hands a well-formed child traceparent downstream (ids stay correlatable in logs). */
const disabledTracing: Tracing = {
  enabled: false,
  startHop(_name, options = {}) {
    const sc = childSpanContext(parseTraceparent(options.traceparent));
    return hopOf(trace.wrapSpanContext(sc), sc);
  },
  forceFlush: async () => {},
  shutdown: async () => {},
};

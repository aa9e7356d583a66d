import { SpanStatusCode, trace, type Attributes, type Span, type SpanContext } from '@opentelemetry/api';
import type { SpanProcessor } from '@opentelemetry/sdk-trace';
import { childSpanContext, formatTraceparent, parseTraceparent } from './traceparent.ts';

export type HopKind = 'server' | 'client' | 'internal' | 'producer' | 'consumer';

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
 * Tracing for one process. Off (no SDK, no exporter, nothing recorded, nothing of the OpenTelemetry
 * SDK even loaded) unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is
 * set; then spans are batched to that collector over OTLP/HTTP. `OTEL_SDK_DISABLED=true` or
 * `OTEL_TRACES_EXPORTER=none` turn it off again; `OTEL_TRACES_SAMPLER_ARG` (0..1) samples new traces
 * by ratio. A request's `traceparent` decides for its hops (parent-based sampling), so one trace is
 * whole or absent. The global OpenTelemetry API is left alone: hops use this provider's tracer directly.
 */
export async function initTracing(serviceName: string, options: InitTracingOptions = {}): Promise<Tracing> {
  const env = options.env ?? process.env;
  const tracesEndpoint = env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'] || undefined;
  const endpoint = env['OTEL_EXPORTER_OTLP_ENDPOINT'] || undefined;
  const off = env['OTEL_SDK_DISABLED'] === 'true' || env['OTEL_TRACES_EXPORTER'] === 'none';
  if (!options.spanProcessors && (off || (!tracesEndpoint && !endpoint))) return disabledTracing;
  // The SDK and the exporter cost a service about 25 MB: loaded only when tracing is on.
  const { sdkTracing } = await import('./tracing-sdk.ts');
  return sdkTracing(serviceName, { env, ...options, ...(!options.spanProcessors && { otlpUrl: tracesEndpoint ?? `${endpoint!.replace(/\/+$/, '')}/v1/traces` }) });
}

export function hopOf(span: Span, sc: SpanContext): Hop {
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

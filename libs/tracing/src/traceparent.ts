import { randomBytes } from 'node:crypto';
import { TraceFlags, type SpanContext } from '@opentelemetry/api';

/*
 * W3C trace context (`traceparent: 00-<trace-id>-<parent-id>-<flags>`), as carried in the
 * `traceparent` header of HTTP requests and NATS messages.
 */

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const ZERO_TRACE = '00000000000000000000000000000000';
const ZERO_SPAN = '0000000000000000';

/** The remote span context a `traceparent` names; undefined when absent or invalid (all-zero ids included). */
export function parseTraceparent(traceparent: string | null | undefined): SpanContext | undefined {
  if (!traceparent) return undefined;
  const m = TRACEPARENT.exec(traceparent.trim());
  if (!m || m[1] === ZERO_TRACE || m[2] === ZERO_SPAN) return undefined;
  return { traceId: m[1]!, spanId: m[2]!, traceFlags: parseInt(m[3]!, 16) & 0xff, isRemote: true };
}

export function formatTraceparent(ctx: Pick<SpanContext, 'traceId' | 'spanId' | 'traceFlags'>): string {
  return `00-${ctx.traceId}-${ctx.spanId}-${(ctx.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
}

// Ids from a pool of random bytes refilled 4 KiB at a time: one syscall per ~170 traces.
let pool = Buffer.alloc(0);
let offset = 0;
export function randomHex(bytes: number): string {
  if (offset + bytes > pool.length) {
    pool = randomBytes(4096);
    offset = 0;
  }
  const hex = pool.toString('hex', offset, offset + bytes);
  offset += bytes;
  return hex;
}

/** A new span context: a child of `parent` (same trace and flags, a new span id), or the root of a new sampled trace. */
export function childSpanContext(parent: SpanContext | undefined): SpanContext {
  return parent
    ? { traceId: parent.traceId, spanId: randomHex(8), traceFlags: parent.traceFlags, isRemote: false }
    : { traceId: randomHex(16), spanId: randomHex(8), traceFlags: TraceFlags.SAMPLED, isRemote: false };
}

import { headers as natsHeaders, nuid, type MsgHdrs } from '@nats-io/transport-node';
import { childSpanContext, formatTraceparent, parseTraceparent } from '@homelab/tracing';

/**
 * Header names carried on NATS messages. HTTP-facing ones keep their HTTP spelling so the
 * ingress copies them across unchanged; the rest are the gateway's own.
 */
export const H = {
  requestId: 'x-request-id',
  traceparent: 'traceparent',
  /** `local-only` keeps a request inside the lab (per request, from the HTTP header of the same name). */
  route: 'x-homelab-route',
  /** The name of the API key the ingress accepted (never the key): the router applies its scopes and budgets. */
  apiKey: 'Homelab-Key',
  /** Set by the router on a worker request: the subject the worker streams the answer to. */
  replyTo: 'Homelab-Reply-To',
  /** Set by the router: the backend's own model id (prefix and alias resolved). */
  upstreamModel: 'Homelab-Upstream-Model',
  /** The model the client asked for, as it asked. */
  requestedModel: 'Homelab-Requested-Model',
  /** Which attempt this is (1-based), and why the router chose this backend. */
  attempt: 'Homelab-Attempt',
  routeReason: 'Homelab-Route-Reason',
  /** When the router received the request (epoch ms, fractional): the start of the gateway's clock. */
  receivedAt: 'Homelab-Received-At',
  /**
   * Reply framing: `chunk` on each streamed chunk, `end` on the terminal message, `keepalive` (no body)
   * from whoever holds the request after 2 s of silence; absent on a single reply.
   */
  stream: 'Homelab-Stream',
  /** On the answer: which backend and model served it. */
  backend: 'Homelab-Backend',
  model: 'Homelab-Model',
  /** On the answer: time spent waiting on the backend, and the gateway's own time, in ms. */
  backendMs: 'Homelab-Backend-Ms',
  overheadMs: 'Homelab-Overhead-Ms',
  retryAfterMs: 'Homelab-Retry-After-Ms',
  /** The NATS micro-service protocol's error headers (ADR-32). */
  serviceError: 'Nats-Service-Error',
  serviceErrorCode: 'Nats-Service-Error-Code',
  errorCode: 'Homelab-Error-Code',
} as const;

export type MsgHeaders = MsgHdrs;

export function createHeaders(): MsgHdrs {
  return natsHeaders();
}

/** Request ids: unique (a NUID: 22 characters, random prefix plus sequence), cheap: no syscall per id. */
export function newRequestId(): string {
  return 'req_' + nuid.next();
}

// W3C trace context is @homelab/tracing's; these are the shapes the bus code uses.

/** A W3C traceparent for a new trace (sampled). */
export function newTraceparent(): string {
  return formatTraceparent(childSpanContext(undefined));
}

/** The same trace with a new span id: what a hop sends downstream. Starts a new trace when `parent` is invalid. */
export function childTraceparent(parent: string | undefined): string {
  return formatTraceparent(childSpanContext(parseTraceparent(parent)));
}

export function traceIdOf(traceparent: string | undefined): string | undefined {
  return parseTraceparent(traceparent)?.traceId;
}

/** Epoch milliseconds with sub-millisecond precision, comparable across processes on one machine. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** After this much silence, whoever holds a request sends a keepalive to its requester. */
export const KEEPALIVE_INTERVAL_MS = 2000;

/**
 * Sends keepalives for requests held longer than the interval without a message to their requester:
 * one timer for the whole process, none per request. `touch` on every message sent to the requester.
 */
export class KeepaliveSender {
  readonly #held = new Map<number, { replyTo: string; last: number }>();
  #next = 0;
  readonly #timer: NodeJS.Timeout;

  constructor(publish: (replyTo: string, headers: MsgHdrs) => void) {
    const frame = natsHeaders();
    frame.set(H.stream, 'keepalive');
    this.#timer = setInterval(() => {
      const now = Date.now();
      for (const entry of this.#held.values()) {
        if (now - entry.last < KEEPALIVE_INTERVAL_MS) continue;
        entry.last = now;
        publish(entry.replyTo, frame);
      }
    }, KEEPALIVE_INTERVAL_MS / 2);
    this.#timer.unref();
  }

  /** Requests held now. */
  get size(): number {
    return this.#held.size;
  }

  /** Holds a request until `release`; `touch` whenever something was sent to its requester. */
  hold(replyTo: string): { touch(): void; release(): void } {
    const key = this.#next++;
    const entry = { replyTo, last: Date.now() };
    this.#held.set(key, entry);
    return { touch: () => { entry.last = Date.now(); }, release: () => { this.#held.delete(key); } };
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}

/** Resolves when `count()` reaches 0, or after `timeoutMs`: how a draining service lets in-flight work finish. */
export async function waitUntilIdle(count: () => number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (count() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  return count() === 0;
}

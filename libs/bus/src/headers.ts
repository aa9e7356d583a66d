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
  /**
   * The API key itself, as the client presented it (ingress → router, or a script's own key): the
   * router verifies it as the ingress does, so nobody can act as a key they do not hold.
   */
  apiKey: 'Homelab-Api-Key',
  /** Router → worker: the name of the key the router accepted (never the key), for the event. */
  keyName: 'Homelab-Key',
  /** The dialect of the request body, and of the answer (libs/dialects: `openai.chat`, `anthropic.messages`, …). */
  dialect: 'Homelab-Dialect',
  /** Router → worker: the client asked for a streamed answer (`1`). */
  streaming: 'Homelab-Streaming',
  /** Router → worker: the client asked for a usage event in its stream (`1`; OpenAI's `stream_options.include_usage`). */
  includeUsage: 'Homelab-Include-Usage',
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
   * Answer framing (docs/subjects.md): `data` on the first message of a stream (later data messages
   * carry no headers at all), `end` on the last, `error` on an error after content, `keepalive`
   * (no body) from whoever holds the request after 2 s of silence; absent on a single answer.
   */
  stream: 'Homelab-Stream',
  /** On the answer: its media type (`application/json`, `text/event-stream`, `application/x-ndjson`). */
  contentType: 'Content-Type',
  /** On the answer: which backend and model served it. */
  backend: 'Homelab-Backend',
  model: 'Homelab-Model',
  /** On the answer: time spent waiting on the backend, in ms (to the first token for a stream). */
  backendMs: 'Homelab-Backend-Ms',
  retryAfterMs: 'Homelab-Retry-After-Ms',
  /** The NATS micro-service protocol's error headers (ADR-32). */
  serviceError: 'Nats-Service-Error',
  serviceErrorCode: 'Nats-Service-Error-Code',
  errorCode: 'Homelab-Error-Code',
  /** JetStream's de-duplication id. */
  msgId: 'Nats-Msg-Id',
} as const;

/** Client HTTP headers the gateway carries to the backend of the same dialect (Anthropic's beta features). */
export const FORWARDED_CLIENT_HEADERS = ['anthropic-beta', 'anthropic-version'] as const;

export type MsgHeaders = MsgHdrs;

export function createHeaders(): MsgHdrs {
  return natsHeaders();
}

/** Request ids: unique (a NUID: 22 characters, random prefix plus sequence), cheap: no syscall per id. */
export function newRequestId(): string {
  return 'req_' + nuid.next();
}

// W3C trace context is @homelab/tracing's; these are the shapes the bus code uses.

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

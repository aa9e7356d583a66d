import { nuid, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { GatewayError } from './errors.ts';
import { H, createHeaders, type MsgHeaders } from './headers.ts';
import { Subjects } from './subjects.ts';

interface Pending {
  onMessage(msg: Msg): void;
  /** The wait is over without an answer: `timeout`, or `disconnected` when the bus connection dropped. */
  onFail(reason: 'timeout' | 'disconnected'): void;
  deadline: number;
}

/** A reply-subject handle: `touch` moves the deadline (e.g. after each streamed chunk). */
export interface Inbox {
  readonly subject: string;
  touch(timeoutMs: number): void;
  close(): void;
}

/**
 * One wildcard subscription for all of a process's replies: each request gets `<prefix>.<n>` as
 * its reply subject, so a request costs no SUB/UNSUB round trip, and timeouts are checked by one
 * sweep instead of a timer and an Error object per request (what `nc.request` costs).
 */
export class ReplyMux {
  readonly #prefix: string;
  readonly #sub: Subscription;
  readonly #pending = new Map<string, Pending>();
  #next = 0;
  #sweep: NodeJS.Timeout | undefined;

  constructor(nc: NatsConnection, inboxPrefix = '_INBOX') {
    this.#prefix = `${inboxPrefix}.${nuid.next()}`;
    this.#sub = nc.subscribe(`${this.#prefix}.*`, {
      callback: (err, msg) => {
        if (err) return;
        this.#pending.get(msg.subject.slice(this.#prefix.length + 1))?.onMessage(msg);
      },
    });
    // Replies in flight when the connection drops are lost: fail their waits now, not at their timeouts.
    void (async () => {
      for await (const status of nc.status()) {
        if (status.type === 'disconnect') for (const entry of [...this.#pending.values()]) entry.onFail('disconnected');
      }
    })();
  }

  open(onMessage: (msg: Msg) => void, onFail: (reason: 'timeout' | 'disconnected') => void, timeoutMs: number): Inbox {
    const token = (this.#next++).toString(36);
    const entry: Pending = { onMessage, onFail, deadline: Date.now() + timeoutMs };
    this.#pending.set(token, entry);
    this.#sweep ??= setInterval(() => this.#expire(), 100).unref();
    return {
      subject: `${this.#prefix}.${token}`,
      touch: (ms) => { entry.deadline = Date.now() + ms; },
      close: () => { this.#pending.delete(token); },
    };
  }

  /**
   * A request with one reply. Rejects with GatewayError `timeout`, or `no_backend` when nothing
   * subscribes to the subject (the server's no-responders status).
   */
  request(nc: NatsConnection, subject: string, data: Uint8Array | undefined, options: { headers?: MsgHeaders; timeoutMs: number }): Promise<Msg> {
    return new Promise((resolve, reject) => {
      const inbox = this.open(
        (msg) => {
          inbox.close();
          if (msg.data.length === 0 && msg.headers?.code === 503) reject(new GatewayError('no_backend', `no service is answering ${subject}`));
          else resolve(msg);
        },
        (reason) => { inbox.close(); reject(reason === 'timeout' ? new GatewayError('timeout', `no answer from ${subject} within ${options.timeoutMs} ms`) : lostConnection()); },
        options.timeoutMs,
      );
      nc.publish(subject, data, { reply: inbox.subject, ...(options.headers && { headers: options.headers }) });
    });
  }

  get pending(): number {
    return this.#pending.size;
  }

  close(): void {
    clearInterval(this.#sweep);
    this.#sub.unsubscribe();
  }

  #expire(): void {
    const now = Date.now();
    for (const entry of this.#pending.values()) if (entry.deadline <= now) entry.onFail('timeout');
  }
}

export interface StreamRequestOptions {
  headers: MsgHeaders;
  /**
   * Longest silence before the first message. The router and the worker send keepalives while they
   * hold the request, so this can be short (seconds) even when the backend takes minutes.
   */
  firstMessageTimeoutMs: number;
  /** Longest silence between two streamed messages (keepalives count). */
  idleTimeoutMs: number;
  /** Called on each keepalive. */
  onKeepalive?: () => void;
  signal?: AbortSignal;
}

/**
 * Sends one request whose answer may be streamed (see docs/subjects.md for the framing) and yields
 * the reply messages in order, ending after the terminal one. A timeout or an abort tells the
 * workers to stop (`inference.cancel`) and ends the iteration with a GatewayError.
 */
export async function* requestStream(nc: NatsConnection, mux: ReplyMux, subject: string, data: Uint8Array, options: StreamRequestOptions): AsyncGenerator<Msg> {
  const queue: Msg[] = [];
  let wake: (() => void) | undefined;
  let failure: GatewayError | undefined;
  let waitingFor = 'first message';
  const inbox = mux.open(
    (msg) => { queue.push(msg); wake?.(); },
    (reason) => {
      failure ??= reason === 'timeout'
        ? new GatewayError('timeout', `no answer within ${waitingFor === 'first message' ? options.firstMessageTimeoutMs : options.idleTimeoutMs} ms (${waitingFor})`)
        : lostConnection();
      wake?.();
    },
    options.firstMessageTimeoutMs,
  );
  let done = false;
  const onAbort = (): void => { failure = new GatewayError('cancelled', 'request cancelled by the client'); wake?.(); };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    nc.publish(subject, data, { reply: inbox.subject, headers: options.headers });
    let first = true;
    let streaming = false;
    for (;;) {
      while (queue.length === 0 && !failure) await new Promise<void>((r) => { wake = r; });
      wake = undefined;
      if (failure) throw failure;
      const msg = queue.shift()!;
      // The server's no-responders status: nothing subscribes to the subject.
      if (first && msg.data.length === 0 && msg.headers?.code === 503) {
        throw new GatewayError('no_backend', `no service is answering ${subject}`);
      }
      first = false;
      const frame = msg.headers?.get(H.stream);
      if (frame === 'keepalive') {
        // Someone still holds the request: the silence clock starts over.
        inbox.touch(waitingFor === 'first message' ? options.firstMessageTimeoutMs : options.idleTimeoutMs);
        options.onKeepalive?.();
        continue;
      }
      // A stream's first message says `data`; the pieces after it carry no headers at all.
      if (frame === 'data' || (streaming && !msg.headers)) {
        streaming = true;
        waitingFor = 'between chunks';
        inbox.touch(options.idleTimeoutMs);
        yield msg;
        continue;
      }
      done = true;
      yield msg;
      return;
    }
  } finally {
    inbox.close();
    options.signal?.removeEventListener('abort', onAbort);
    if (!done) publishCancel(nc, options.headers.get(H.requestId));
  }
}

function lostConnection(): GatewayError {
  return new GatewayError('backend_unavailable', 'the gateway lost its message bus connection while waiting for the answer; retry');
}

/** Tells every router and worker to stop working on a request (only one attempt of it, when given). */
export function publishCancel(nc: NatsConnection, requestId: string | undefined, attempt?: number): void {
  if (!requestId || nc.isClosed()) return;
  const headers = createHeaders();
  headers.set(H.requestId, requestId);
  if (attempt !== undefined) headers.set(H.attempt, String(attempt));
  nc.publish(Subjects.cancel.subject, undefined, { headers });
}

import { nuid, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { GatewayError } from './errors.ts';
import { H, createHeaders, type MsgHeaders } from './headers.ts';
import { Subjects } from './subjects.ts';

/**
 * One wildcard subscription for all of a process's streamed replies: each request gets
 * `<prefix>.<n>` as its reply subject, so a request costs no SUB/UNSUB round trip.
 */
export class ReplyMux {
  readonly #prefix: string;
  readonly #sub: Subscription;
  readonly #handlers = new Map<string, (msg: Msg) => void>();
  #next = 0;

  constructor(nc: NatsConnection, inboxPrefix = '_INBOX') {
    this.#prefix = `${inboxPrefix}.${nuid.next()}`;
    this.#sub = nc.subscribe(`${this.#prefix}.*`, {
      callback: (err, msg) => {
        if (err) return;
        const token = msg.subject.slice(this.#prefix.length + 1);
        this.#handlers.get(token)?.(msg);
      },
    });
  }

  open(handler: (msg: Msg) => void): { subject: string; close(): void } {
    const token = (this.#next++).toString(36);
    this.#handlers.set(token, handler);
    return { subject: `${this.#prefix}.${token}`, close: () => this.#handlers.delete(token) };
  }

  get pending(): number {
    return this.#handlers.size;
  }

  close(): void {
    this.#sub.unsubscribe();
  }
}

export interface StreamRequestOptions {
  headers: MsgHeaders;
  /** Longest wait for the first message (routing plus the backend's time to first token). */
  firstMessageTimeoutMs: number;
  /** Longest silence between two streamed messages. */
  idleTimeoutMs: number;
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
  const inbox = mux.open((msg) => { queue.push(msg); wake?.(); });
  let failure: GatewayError | undefined;
  let timer: NodeJS.Timeout | undefined;
  let done = false;
  const arm = (ms: number, what: string): void => {
    clearTimeout(timer);
    timer = setTimeout(() => { failure = new GatewayError('timeout', `no answer within ${ms} ms (${what})`); wake?.(); }, ms);
  };
  const onAbort = (): void => { failure = new GatewayError('cancelled', 'request cancelled by the client'); wake?.(); };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    nc.publish(subject, data, { reply: inbox.subject, headers: options.headers });
    arm(options.firstMessageTimeoutMs, 'first message');
    let first = true;
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
      if (frame === 'chunk') {
        arm(options.idleTimeoutMs, 'between chunks');
        yield msg;
        continue;
      }
      done = true;
      yield msg;
      return;
    }
  } finally {
    clearTimeout(timer);
    inbox.close();
    options.signal?.removeEventListener('abort', onAbort);
    if (!done) publishCancel(nc, options.headers.get(H.requestId));
  }
}

/** Tells every router and worker to stop working on a request. */
export function publishCancel(nc: NatsConnection, requestId: string | undefined): void {
  if (!requestId || nc.isClosed()) return;
  const headers = createHeaders();
  headers.set(H.requestId, requestId);
  nc.publish(Subjects.cancel.subject, undefined, { headers });
}


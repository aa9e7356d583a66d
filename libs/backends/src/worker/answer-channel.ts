import { H, createHeaders, errorHeaders, type GatewayError, type MsgHeaders } from '@homelab/bus';
import type { WorkerEnvelope } from './envelope.ts';

/**
 * The answer's way to the requester, framed as docs/subjects.md says: a single answer is one
 * message with the answer's headers; a stream's first message carries them with `Homelab-Stream:
 * data`, every later data message carries no headers at all (the cheapest NATS message there is),
 * and `end` (or `error`, after content) closes it.
 *
 * Until the stream is committed (content was seen) its bytes are held back: if the backend fails
 * before that, the router can still try another backend, and the client never sees two openings.
 */
/** Publishes one message (the worker's NATS connection; a recorder in unit tests). */
export type Publish = (subject: string, body: Uint8Array | string, headers?: MsgHeaders) => void;

export class AnswerChannel {
  readonly #publishTo: Publish;
  readonly #envelope: WorkerEnvelope;
  readonly #backend: string;
  /** Called on every message sent, so the keepalive timer knows the requester heard from us. */
  readonly #touch: () => void;
  #held: Uint8Array[] = [];
  #committed = false;

  constructor(publish: Publish, envelope: WorkerEnvelope, backend: string, touch: () => void) {
    this.#publishTo = publish;
    this.#envelope = envelope;
    this.#backend = backend;
    this.#touch = touch;
  }

  get committed(): boolean {
    return this.#committed;
  }

  /** The whole answer in one message. */
  single(body: Uint8Array | string, backendMs: number): void {
    const headers = this.#answerHeaders('application/json');
    headers.set(H.backendMs, backendMs.toFixed(3));
    this.#publish(body, headers);
  }

  /**
   * Streamed bytes. `commit`: they carry content, so from here on the answer belongs to this
   * backend. Returns true on the call that committed the stream (the router is told `started`).
   */
  data(bytes: Uint8Array | string, commit: boolean, ttftMs: () => number): boolean {
    if (!this.#committed && !commit) {
      this.#held.push(typeof bytes === 'string' ? Buffer.from(bytes) : bytes);
      return false;
    }
    if (this.#committed) {
      this.#publish(bytes);
      return false;
    }
    this.#committed = true;
    const headers = this.#answerHeaders(this.#envelope.dialect.framing?.contentType ?? 'application/json');
    headers.set(H.stream, 'data');
    headers.set(H.backendMs, ttftMs().toFixed(3));
    const held = this.#held;
    this.#held = [];
    this.#publish(held.length === 0 ? bytes : Buffer.concat([...held, typeof bytes === 'string' ? Buffer.from(bytes) : bytes]), headers);
    return true;
  }

  /** The end of a committed stream, with the dialect's closing bytes. */
  end(bytes: string, backendMs: number): void {
    const headers = createHeaders();
    headers.set(H.stream, 'end');
    headers.set(H.backendMs, backendMs.toFixed(3));
    this.#publish(bytes, headers);
  }

  /** An error after content: the dialect's in-stream error ends the stream. */
  fail(bytes: string, error: GatewayError): void {
    const headers = errorHeaders(error);
    headers.set(H.stream, 'error');
    this.#publish(bytes, headers);
  }

  #answerHeaders(contentType: string): MsgHeaders {
    const e = this.#envelope;
    const headers = createHeaders();
    headers.set(H.contentType, contentType);
    headers.set(H.dialect, e.dialect.name);
    headers.set(H.backend, this.#backend);
    headers.set(H.model, e.model);
    headers.set(H.attempt, String(e.attempt));
    headers.set(H.routeReason, e.routeReason);
    headers.set(H.requestId, e.requestId);
    return headers;
  }

  #publish(body: Uint8Array | string, headers?: MsgHeaders): void {
    this.#publishTo(this.#envelope.replyTo, body, headers);
    this.#touch();
  }
}

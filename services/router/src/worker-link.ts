import { GatewayError, errorFromReply, publishCancel, workerSubject, type MsgHeaders, type NatsConnection, type ReplyMux, type WorkerOperation } from '@homelab/bus';
import type { LabConfig } from '@homelab/config';
import type { AttemptResult, WorkerLink } from './attempts.ts';
import type { Candidate } from './resolve.ts';

export interface WorkerLinkOptions {
  nc: NatsConnection;
  mux: ReplyMux;
  backends: LabConfig['backends'];
  operation: WorkerOperation;
  /** A streamed answer commits at its first content; a whole answer only when it is complete. */
  stream: boolean;
  requestId: string;
  /** The client's bytes, sent on unchanged. */
  body: Uint8Array;
  /** The router's envelope for one attempt (docs/subjects.md). */
  headersFor(candidate: Candidate, attempt: number, reason: string): MsgHeaders;
  /** Whether the requester went away. */
  isCancelled(): boolean;
}

const decoder = new TextDecoder();
const ACK = new Uint8Array(0);
/** Past a backend's total timeout, the router stops holding the slot even if the worker never says `done`. */
const DONE_GRACE_MS = 5000;

/**
 * One request's attempts on workers over NATS. The worker answers the requester directly and tells
 * the router on its inbox: `started` (a stream is committed) then later `done`, or `done` at once,
 * or an error before any content (acknowledged, so the worker knows the router handles it).
 */
export function natsWorkerLink(o: WorkerLinkOptions): WorkerLink {
  return {
    get cancelled() { return o.isCancelled(); },
    abandon: (attempt) => publishCancel(o.nc, o.requestId, attempt),
    attempt(candidate: Candidate, attempt: number, reason: string): Promise<AttemptResult> {
      const backend = o.backends[candidate.provider]!;
      const subject = workerSubject(candidate.provider, o.operation);
      // A whole answer says nothing until it is complete: only a stream has a first token to wait for.
      const commitTimeoutMs = o.stream ? backend.firstTokenTimeoutMs : backend.totalTimeoutMs;
      return attemptOnce(o, subject, o.headersFor(candidate, attempt, reason), commitTimeoutMs, backend.totalTimeoutMs + DONE_GRACE_MS);
    },
  };
}

function attemptOnce(o: WorkerLinkOptions, subject: string, headers: MsgHeaders, commitTimeoutMs: number, totalTimeoutMs: number): Promise<AttemptResult> {
  const { nc, mux } = o;
  return new Promise((resolve) => {
    let answered = false;
    let finish: () => void = () => {};
    const finished = new Promise<void>((r) => { finish = r; });
    const inbox = mux.open(
      (reply) => {
        if (!answered) {
          // The server's no-responders status: no worker subscribes for this backend.
          if (reply.data.length === 0 && reply.headers?.code === 503) {
            inbox.close();
            resolve({ kind: 'failed', error: new GatewayError('no_backend', `no worker answers ${subject}`) });
            return;
          }
          const error = errorFromReply(reply.headers, reply.data);
          if (error) {
            if (reply.reply) nc.publish(reply.reply, ACK);
            inbox.close();
            resolve({ kind: 'failed', error });
            return;
          }
          answered = true;
          resolve({ kind: 'answered', finished });
          if (decoder.decode(reply.data) === 'started') { inbox.touch(totalTimeoutMs); return; }
        }
        // `done`, or an error after content: the answer is over.
        if (reply.reply) nc.publish(reply.reply, ACK);
        inbox.close();
        finish();
      },
      (reason) => {
        inbox.close();
        if (answered) finish();
        else if (reason === 'timeout') resolve({ kind: 'failed', error: new GatewayError('timeout', `no ${o.stream ? 'first token' : 'answer'} from ${subject.split('.')[1]} within ${commitTimeoutMs} ms`) });
        else resolve({ kind: 'failed', error: new GatewayError('backend_unavailable', 'the router lost its message bus connection') });
      },
      commitTimeoutMs,
    );
    nc.publish(subject, o.body, { reply: inbox.subject, headers });
  });
}

import type { FastifyRequest } from 'fastify';
import {
  GatewayError, H, ImageStreamFrame, Subjects, childTraceparent, createHeaders, errorFromReply, imageJobCancelSubject, imageJobError,
  imageJobResult, imageJobStatusSubject,
  type ImageJobRecord, type ImageJobResult, type ImagePartialFrame, type ImageSubmitReply, type Inbox, type Msg, type MsgHeaders,
  type NatsConnection, type ReplyMux,
} from '@homelab/bus';
import type { Logger } from '@homelab/logging';
import { wantsLocalOnly, type RelayBus } from '../relay.ts';

/*
 * An image request's job on the bus: submitted on `images.jobs.submit` (the router decides and
 * queues), then followed on the request's own inbox until it ends. The job may wait in its queue
 * far longer than any silence timeout, so silence only means asking the job's record.
 */

/** What is read of a message on the job's inbox. */
export type JobMessage = Pick<Msg, 'headers' | 'data'>;

export type FollowEvent =
  | { kind: 'message'; msg: JobMessage }
  /** Nothing on the inbox for `gateway.silenceTimeoutMs`. */
  | { kind: 'silence' }
  /** The bus connection dropped: messages may have been lost. */
  | { kind: 'disconnected' }
  /** The HTTP client went away. */
  | { kind: 'hangup' }
  /** `images.jobs.waitTimeoutMs` is over. */
  | { kind: 'deadline' };

/** The events of one followed job, in order: the inbox, the HTTP socket and a timer all push here. */
export class JobFollower {
  readonly #queue: FollowEvent[] = [];
  #wake: (() => void) | undefined;

  push(event: FollowEvent): void {
    this.#queue.push(event);
    this.#wake?.();
  }

  async next(): Promise<FollowEvent> {
    while (this.#queue.length === 0) await new Promise<void>((r) => { this.#wake = r; });
    this.#wake = undefined;
    return this.#queue.shift()!;
  }
}

export type JobOutcome =
  | { kind: 'result'; result: ImageJobResult }
  | { kind: 'error'; error: GatewayError }
  /** The client went away; nothing is left to answer. */
  | { kind: 'gone' };

/** What a job reports on the way, for a client that streams (the SSE writer). */
export interface JobProgress {
  keepalive(): void;
  partial(frame: ImagePartialFrame): void;
}

/** The calls on a job the follower makes (`natsJobControls` over the bus). */
export interface JobControls {
  askStatus(id: string): Promise<ImageJobRecord | undefined>;
  /** Fire and forget: the client is gone or given up on, nobody waits for the answer. */
  cancel(id: string, ifQueued: boolean): void;
}

export interface FollowOptions {
  /** `images.jobs.finishOnHangup`: a running job of a client that hung up finishes into the object store. */
  finishOnHangup: boolean;
  waitTimeoutMs: number;
}

/** Follows the job until its end, the client's hang-up, or the deadline, whichever comes first. */
export async function followImageJob(
  job: ImageSubmitReply, follower: JobFollower, controls: JobControls, options: FollowOptions, progress?: JobProgress,
): Promise<JobOutcome> {
  for (;;) {
    const event = await follower.next();
    switch (event.kind) {
      case 'hangup':
        controls.cancel(job.id, options.finishOnHangup);
        return { kind: 'gone' };
      case 'deadline':
        controls.cancel(job.id, false);
        return { kind: 'error', error: deadlineError(options.waitTimeoutMs) };
      case 'silence':
      case 'disconnected': {
        progress?.keepalive();
        const outcome = outcomeOfRecord(await controls.askStatus(job.id));
        if (outcome) return outcome;
        break;
      }
      case 'message': {
        const frame = readJobMessage(event.msg);
        if (frame.kind === 'keepalive') progress?.keepalive();
        else if (frame.kind === 'partial') progress?.partial(frame.partial);
        else return frame;
        break;
      }
    }
  }
}

function deadlineError(waitTimeoutMs: number): GatewayError {
  return new GatewayError('timeout', `the image job did not finish within ${waitTimeoutMs} ms (images.jobs.waitTimeoutMs); it was cancelled`);
}

/** A job's end as its record tells it; undefined while it is queued or running (or the record is out of reach). */
export function outcomeOfRecord(record: ImageJobRecord | undefined): JobOutcome | undefined {
  if (record?.state === 'completed') return { kind: 'result', result: imageJobResult(record) };
  if (record?.state === 'failed' || record?.state === 'cancelled') return { kind: 'error', error: imageJobError(record) };
  return undefined;
}

export type JobFrame = { kind: 'keepalive' } | { kind: 'partial'; partial: ImagePartialFrame } | Exclude<JobOutcome, { kind: 'gone' }>;

/** One message on the job's inbox: a frame on the way (`Homelab-Stream`), or its end (the result, or the service error). */
export function readJobMessage(msg: JobMessage): JobFrame {
  const frame = msg.headers?.get(H.stream);
  // OpenAI's image stream has no progress event: progress only keeps the client's connection alive.
  if (frame === ImageStreamFrame.keepalive || frame === ImageStreamFrame.progress) return { kind: 'keepalive' };
  if (frame === ImageStreamFrame.partial) return { kind: 'partial', partial: parseJson<ImagePartialFrame>(msg.data) };
  const error = errorFromReply(msg.headers, msg.data);
  if (error) return { kind: 'error', error };
  return { kind: 'result', result: parseJson<ImageJobResult>(msg.data) };
}

/** Answers of our own services, trusted as typed: one that is not JSON fails the request as an internal error. */
function parseJson<T>(data: Uint8Array): T {
  return JSON.parse(Buffer.from(data).toString('utf8')) as T;
}

/**
 * The inbox the job reports to. Its silence timeout only wakes the follower (and is armed again):
 * the job itself has `images.jobs.waitTimeoutMs`.
 */
export function openJobInbox(mux: ReplyMux, follower: JobFollower, silenceTimeoutMs: number): Inbox {
  const inbox = mux.open((msg) => follower.push({ kind: 'message', msg }), (reason) => {
    inbox.touch(silenceTimeoutMs);
    follower.push({ kind: reason === 'timeout' ? 'silence' : 'disconnected' });
  }, silenceTimeoutMs);
  return inbox;
}

/** The submission's headers: the request's id and trace, where the job reports, and the client's key and route. */
export function submitHeaders(request: FastifyRequest, replyTo: string): MsgHeaders {
  const headers = createHeaders();
  headers.set(H.requestId, request.id);
  headers.set(H.traceparent, childTraceparent(request.headers['traceparent'] as string | undefined));
  headers.set(H.replyTo, replyTo);
  if (request.presentedKey) headers.set(H.apiKey, request.presentedKey);
  if (wantsLocalOnly(request.headers['x-homelab-route'])) headers.set(H.route, 'local-only');
  return headers;
}

/** Submits a job: the router answers at once with the job (queued), or rejects it with its error. */
export async function submitImageJob(nc: NatsConnection, mux: ReplyMux, headers: MsgHeaders, body: Uint8Array): Promise<ImageSubmitReply> {
  const answer = await mux.request(nc, Subjects.imagesSubmit.subject, body, { headers, timeoutMs: 10_000 });
  const error = errorFromReply(answer.headers, answer.data);
  if (error) throw error;
  return parseJson<ImageSubmitReply>(answer.data);
}

/** The job calls over the bus. A status that cannot be read is no news: the follower waits on. */
export function natsJobControls(bus: RelayBus, log: Logger): JobControls {
  return {
    async askStatus(id) {
      const { nc, mux } = bus;
      if (!nc || !mux) return undefined;
      try {
        const answer = await mux.request(nc, imageJobStatusSubject(id), undefined, { timeoutMs: 3000 });
        if (errorFromReply(answer.headers, answer.data)) return undefined;
        return parseJson<ImageJobRecord>(answer.data);
      } catch {
        return undefined;
      }
    },
    cancel(id, ifQueued) {
      const { nc, mux } = bus;
      if (!nc || !mux || nc.isClosed()) return;
      mux.request(nc, imageJobCancelSubject(id), Buffer.from(JSON.stringify({ ifQueued })), { timeoutMs: 5000 })
        .catch((err: unknown) => log.warn({ job: id, err: (err as Error).message }, 'could not cancel the image job of a client that went away'));
    },
  };
}

import {
  GatewayError, type ImageInput, type ImageJob, type ImageJobRecord, type ImagePartialFrame, type ImageProgress,
} from '@homelab/bus';
import type { Logger } from '@homelab/logging';

/*
 * What an image backend (ComfyUI, OpenAI) implements: one function, the executor, that runs a job
 * with the context the worker gives it and returns the images. The rest of a job's life is the
 * worker's (jobs.ts).
 */

/** A job failure with the reason metrics count it under (`validation`, `node_error`, `out_of_memory`, `lost`, …). */
export class ImageJobError extends GatewayError {
  readonly reason: string;
  readonly node: string | undefined;
  readonly nodeType: string | undefined;
  constructor(code: ConstructorParameters<typeof GatewayError>[0], message: string, reason: string, extra: { node?: string; nodeType?: string; status?: number; param?: string; cause?: unknown } = {}) {
    super(code, message, { ...(extra.status !== undefined && { status: extra.status }), ...(extra.param && { param: extra.param }), ...(extra.cause !== undefined && { cause: extra.cause }) });
    this.name = 'ImageJobError';
    this.reason = reason;
    this.node = extra.node;
    this.nodeType = extra.nodeType;
  }
}

export interface ImageJobContext {
  job: ImageJob;
  /** The record when the job started here: `promptId` set means a worker already submitted it (this is a takeover). */
  record: ImageJobRecord;
  /** Which delivery this is (2 and more: a worker died with the job, or handed it back). */
  attempt: number;
  /** Aborted when the job is cancelled: stop the backend's work (ComfyUI: interrupt, or delete from its queue). */
  cancelSignal: AbortSignal;
  /** Aborted when this worker stops: leave the backend's work running (the next worker takes it over), just return. */
  stopSignal: AbortSignal;
  log: Logger;
  /** Changes the job's record (e.g. the prompt id, before submitting it). */
  patch(change: Partial<ImageJobRecord>): Promise<ImageJobRecord>;
  /** A step done: the event, the requester's progress frame, and now and then the record. */
  progress(p: ImageProgress): void;
  /** A partial image for a streaming requester. */
  partial(frame: ImagePartialFrame): void;
  readInput(input: ImageInput): Promise<{ data: Uint8Array; contentType: string }>;
}

export interface ImageJobOutput {
  images: { data: Uint8Array; contentType: string; width?: number; height?: number; revisedPrompt?: string }[];
  /** Sampler steps run (for steps/s). */
  steps?: number;
  usage?: { inputTokens: number; outputTokens: number };
  costUsd?: number;
}

export type ImageJobExecutor = (ctx: ImageJobContext) => Promise<ImageJobOutput>;

/** Thrown by an executor whose stop signal fired: the job goes back to the queue as it is. */
export class HandedBack extends Error {
  constructor() {
    super('handed back');
    this.name = 'HandedBack';
  }
}

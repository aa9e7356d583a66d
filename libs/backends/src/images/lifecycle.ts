import {
  GatewayError, H, ImageStreamFrame, createHeaders, encodeJson, imageEventSubject, imageJobError, sendImageJobEnd, toGatewayError,
  type EventPublisher, type ImageFileRef, type ImageFiles, type ImageJob, type ImageJobError as ImageJobErrorEntry, type ImageJobRecord,
  type ImageJobStore, type ImageProgress, type NatsConnection,
} from '@homelab/bus';
import type { Logger } from '@homelab/logging';
import { ImageJobError, type ImageJobContext, type ImageJobOutput } from './executor.ts';
import { inputFileIds, readInput } from './inputs.ts';

/*
 * The writes of one job's life: its record (compare-and-set), its events, the answers to whoever
 * waits. Whoever moves the record to an end state publishes that end: a cancel and a worker that
 * finish at once never both answer.
 */

export interface JobLifecycleDeps {
  nc: NatsConnection;
  events: EventPublisher;
  jobs: ImageJobStore;
  files: ImageFiles;
}

/** What the executor is given to stop by: a cancel (stop the backend's work), or this worker stopping (leave it). */
export interface JobSignals {
  cancel: AbortSignal;
  stop: AbortSignal;
}

/** Keepalives to the requester, which need not go out while frames do. */
export interface RequesterHold {
  touch(): void;
}

type Change = (record: ImageJobRecord) => ImageJobRecord | undefined;

export class JobLifecycle {
  readonly #deps: JobLifecycleDeps;
  readonly #job: ImageJob;
  readonly #log: Logger;
  /** Progress events go out in order, one at a time; an end waits for them. */
  #chain: Promise<void> = Promise.resolve();
  #lastRecordWrite = 0;
  #steps = 0;

  constructor(deps: JobLifecycleDeps, job: ImageJob, log: Logger) {
    this.#deps = deps;
    this.#job = job;
    this.#log = log;
  }

  context(record: ImageJobRecord, attempt: number, signals: JobSignals, hold: RequesterHold | undefined): ImageJobContext {
    const job = this.#job;
    return {
      job, record, attempt, log: this.#log,
      cancelSignal: signals.cancel,
      stopSignal: signals.stop,
      patch: (change) => this.#patch(change),
      progress: (p) => this.#progress(p, attempt, hold),
      partial: (frame) => this.#sendFrame(ImageStreamFrame.partial, frame, hold),
      readInput: (input) => readInput(this.#deps.files, input),
    };
  }

  async completed(output: ImageJobOutput, queueWaitMs: number, durationMs: number): Promise<void> {
    const job = this.#job;
    if (output.images.length === 0) throw new ImageJobError('backend_error', `the ${job.backend} job produced no image (does the workflow save one?)`, 'no_output');
    const { refs, bytes } = await this.#storeImages(output);
    await this.#chain;
    const finishedAt = new Date().toISOString();
    const steps = output.steps ?? (this.#steps || undefined);
    const result = await this.#deps.jobs.update(job.id, completedRecord(refs, finishedAt, steps, output));
    if (!result?.changed) return;
    await this.#deps.events.publish('imageCompleted', {
      jobId: job.id, model: job.model, backend: job.backend, requestedModel: job.requestedModel, images: refs, attempts: result.record.attempts,
      queueWaitMs, durationMs, ...(steps !== undefined && { steps, stepsPerSecond: durationMs > 0 ? steps / (durationMs / 1000) : 0 }),
      ...(output.usage && { inputTokens: output.usage.inputTokens, outputTokens: output.usage.outputTokens }),
      ...(output.costUsd !== undefined && { costUsd: output.costUsd }), ...(job.apiKey && { apiKey: job.apiKey }), at: finishedAt,
    }, { subject: imageEventSubject('completed', job.id), msgId: `${job.id}:completed` });
    sendImageJobEnd(this.#deps.nc, result.record, { bytes });
    await this.#dropInputs();
    this.#log.info({ images: refs.length, durationMs: Math.round(durationMs) }, 'image job completed');
  }

  async failed(err: unknown, queueWaitMs?: number, durationMs?: number): Promise<void> {
    const job = this.#job;
    const { error, entry } = jobFailure(err);
    if (error.code === 'internal_error') this.#log.error({ err }, 'image job failed');
    await this.#chain;
    const finishedAt = new Date().toISOString();
    const result = await this.#deps.jobs.update(job.id, endedRecord({ state: 'failed', error: entry, finishedAt }));
    if (!result?.changed) return;
    const node = err instanceof ImageJobError ? { ...(err.node && { node: err.node }), ...(err.nodeType && { nodeType: err.nodeType }) } : {};
    await this.#deps.events.publish('imageFailed', {
      jobId: job.id, model: job.model, backend: job.backend, error: entry, attempts: result.record.attempts, ...node,
      ...(queueWaitMs !== undefined && { queueWaitMs }), ...(durationMs !== undefined && { durationMs }), ...(job.apiKey && { apiKey: job.apiKey }), at: finishedAt,
    }, { subject: imageEventSubject('failed', job.id), msgId: `${job.id}:failed` });
    sendImageJobEnd(this.#deps.nc, result.record, { error: imageJobError(result.record) });
    await this.#dropInputs();
    this.#log.info({ code: error.code, reason: entry.reason }, 'image job failed');
  }

  async cancelled(phase: 'queued' | 'running'): Promise<void> {
    const job = this.#job;
    await this.#chain;
    const finishedAt = new Date().toISOString();
    const result = await this.#deps.jobs.update(job.id, endedRecord({ state: 'cancelled', finishedAt }));
    if (!result?.changed) return;
    await this.#deps.events.publish('imageCancelled', {
      jobId: job.id, model: job.model, backend: job.backend, phase, ...(job.apiKey && { apiKey: job.apiKey }), at: finishedAt,
    }, { subject: imageEventSubject('cancelled', job.id), msgId: `${job.id}:cancelled` });
    sendImageJobEnd(this.#deps.nc, result.record, { error: imageJobError(result.record) });
    await this.#dropInputs();
    this.#log.info({ phase }, 'image job cancelled');
  }

  async #patch(change: Partial<ImageJobRecord>): Promise<ImageJobRecord> {
    const result = await this.#deps.jobs.update(this.#job.id, (r) => ({ ...r, ...change }));
    if (!result) throw new GatewayError('internal_error', `image job ${this.#job.id} has no record`);
    return result.record;
  }

  #progress(p: ImageProgress, attempt: number, hold: RequesterHold | undefined): void {
    const job = this.#job;
    this.#steps = Math.max(this.#steps, p.step);
    this.#sendFrame(ImageStreamFrame.progress, p, hold);
    const at = new Date().toISOString();
    this.#chain = this.#chain.then(() => this.#deps.events.publish('imageProgress', { jobId: job.id, model: job.model, backend: job.backend, ...p, at }, {
      subject: imageEventSubject('progress', job.id), msgId: `${job.id}:progress:${attempt}:${p.node ?? ''}:${p.step}/${p.of}`,
    })).catch((err: unknown) => this.#log.warn({ err: (err as Error).message }, 'progress event not stored'));
    // The record's progress is for `status` readers: once a second is enough.
    if (Date.now() - this.#lastRecordWrite >= 1000) {
      this.#lastRecordWrite = Date.now();
      void this.#deps.jobs.update(job.id, (r) => (r.state === 'running' ? { ...r, progress: p } : undefined)).catch(() => undefined);
    }
  }

  /** A frame to a requester that follows the job on its own subject (the ingress), if any. */
  #sendFrame(frame: string, body: unknown, hold: RequesterHold | undefined): void {
    const { nc } = this.#deps;
    if (!this.#job.progressTo || nc.isClosed()) return;
    const headers = createHeaders();
    headers.set(H.stream, frame);
    headers.set(H.requestId, this.#job.requestId);
    nc.publish(this.#job.progressTo, encodeJson(body), { headers });
    hold?.touch();
  }

  async #storeImages(output: ImageJobOutput): Promise<{ refs: ImageFileRef[]; bytes: Map<string, Uint8Array> }> {
    const job = this.#job;
    const refs: ImageFileRef[] = [];
    const bytes = new Map<string, Uint8Array>();
    for (const image of output.images) {
      const ref = await this.#deps.files.put(image.data, {
        role: 'output', jobId: job.id, contentType: image.contentType, ...(job.apiKey && { apiKey: job.apiKey }),
        ...(image.width !== undefined && { width: image.width }), ...(image.height !== undefined && { height: image.height }),
      });
      refs.push(image.revisedPrompt ? { ...ref, revisedPrompt: image.revisedPrompt } : ref);
      bytes.set(ref.id, image.data);
    }
    return { refs, bytes };
  }

  async #dropInputs(): Promise<void> {
    for (const id of inputFileIds(this.#job)) await this.#deps.files.delete(id);
  }
}

/** A failure as the record and the metrics keep it: the error the client gets, and why (a metric label). */
export function jobFailure(err: unknown): { error: GatewayError; entry: ImageJobErrorEntry } {
  const error = err instanceof GatewayError ? err : toGatewayError(err);
  const reason = err instanceof ImageJobError ? err.reason : error.code === 'internal_error' ? 'internal' : error.code;
  return { error, entry: { code: error.code, status: error.status, message: error.message, reason, ...(error.param && { param: error.param }) } };
}

/** Only a running job completes: one cancelled or failed meanwhile keeps its end. */
export function completedRecord(refs: ImageFileRef[], finishedAt: string, steps: number | undefined, output: Pick<ImageJobOutput, 'usage' | 'costUsd'>): Change {
  return (r) => (r.state === 'running' ? {
    ...r, state: 'completed', images: refs, finishedAt,
    ...(steps !== undefined && { progress: { step: steps, of: steps, percent: 100 } }),
    ...(output.usage && { usage: output.usage }), ...(output.costUsd !== undefined && { costUsd: output.costUsd }),
  } : undefined);
}

/** Failed or cancelled, from queued or running: a job already ended keeps its first end. */
export function endedRecord(end: { state: 'failed'; error: ImageJobErrorEntry; finishedAt: string } | { state: 'cancelled'; finishedAt: string }): Change {
  return (r) => (r.state === 'running' || r.state === 'queued' ? { ...r, ...end } : undefined);
}

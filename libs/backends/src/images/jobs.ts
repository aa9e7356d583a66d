import { AckPolicy, DeliverPolicy, JetStreamApiError, jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream';
import {
  GatewayError, H, ImageJobSchema, ImageStreamFrame, KeepaliveSender, Subjects, createHeaders, encodeJson, imageEventSubject, imageJobError,
  imageJobSubject, sendImageJobEnd, toGatewayError, validator,
  type EventPublisher, type ImageBackend, type ImageFileRef, type ImageFiles, type ImageInput, type ImageJob, type ImageJobRecord, type ImageJobStore,
  type ImagePartialFrame, type ImageProgress, type NatsConnection,
} from '@homelab/bus';
import type { Logger } from '@homelab/logging';

/*
 * The life of an image job on a worker, the same for every image backend (ComfyUI, OpenAI): take it
 * from the work queue (a durable pull consumer: at most `concurrency` unacknowledged at once, the rest
 * wait in order), move its record to `running` (compare-and-set: a cancel that got there first wins),
 * run it, keep the work queue told it is alive, store its images, record the outcome, publish the
 * event, answer whoever waits, and only then acknowledge it, so a worker that dies mid-job leaves it
 * to be delivered again. The backend part is one function, the executor.
 */

const checkJob = validator(ImageJobSchema);

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

export interface ServeImageJobsOptions {
  nc: NatsConnection;
  log: Logger;
  events: EventPublisher;
  jobs: ImageJobStore;
  files: ImageFiles;
  backend: ImageBackend;
  /** Jobs at once (the consumer's max_ack_pending, shared by every replica of the worker). */
  concurrency: number;
  ackWaitMs: number;
  maxAttempts: number;
  executor: ImageJobExecutor;
  /** How long `stop()` lets running jobs finish before handing them back. */
  stopGraceMs?: number;
}

export interface ImageJobServer {
  /** Jobs running here now. */
  running(): number;
  stop(): Promise<void>;
}

interface Local {
  cancel: AbortController;
  stop: AbortController;
  msg: JsMsg;
}

/** Takes this backend's jobs from the work queue and runs them, `concurrency` at a time, in order. */
export async function serveImageJobs(options: ServeImageJobsOptions): Promise<ImageJobServer> {
  const { nc, log, backend } = options;
  const durable = `worker-${backend}-images`;
  const config = {
    durable_name: durable, filter_subject: imageJobSubject(backend), ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All,
    ack_wait: options.ackWaitMs * 1e6, max_ack_pending: options.concurrency, max_deliver: -1,
  };
  const jsm = await jetstreamManager(nc);
  try {
    await jsm.consumers.info('IMAGE_JOBS', durable);
    await jsm.consumers.update('IMAGE_JOBS', durable, config);
  } catch (err) {
    if (!(err instanceof JetStreamApiError && err.status === 404)) throw err;
    await jsm.consumers.add('IMAGE_JOBS', config);
  }
  const consumer = await jetstream(nc).consumers.get('IMAGE_JOBS', durable);
  const messages = await consumer.consume({ max_messages: options.concurrency, expires: 5000, idle_heartbeat: 1000 });
  const local = new Map<string, Local>();
  const keepalives = new KeepaliveSender((to, headers) => { if (!nc.isClosed()) nc.publish(to, undefined, { headers }); });

  // A cancel for a job running here interrupts it; one for a job still queued is the router's (KV) business.
  const cancels = nc.subscribe(Subjects.imagesCancel.subject, {
    callback: (_err, msg) => {
      const id = msg.subject.split('.')[2] ?? '';
      const running = local.get(id);
      if (!running) return;
      let ifQueued = false;
      try { ifQueued = msg.data.length > 0 && (JSON.parse(msg.string()) as { ifQueued?: boolean } | null)?.ifQueued === true; } catch { /* an empty or odd body: a plain cancel */ }
      if (!ifQueued) running.cancel.abort(new GatewayError('cancelled', `image job ${id} was cancelled`));
    },
  });

  const handle = async (msg: JsMsg): Promise<void> => {
    let job: ImageJob;
    try {
      job = checkJob.parse(msg.json());
    } catch (err) {
      log.error({ seq: msg.seq, err: (err as Error).message }, 'invalid image job dropped');
      msg.term();
      return;
    }
    const working = setInterval(() => {
      msg.working();
      // A cancel this worker missed (it was reconnecting) is in the record: read it with each beat.
      const running = local.get(job.id);
      if (running && !running.cancel.signal.aborted) {
        void options.jobs.get(job.id).then((found) => {
          if (found?.record.cancelRequested) running.cancel.abort(new GatewayError('cancelled', `image job ${job.id} was cancelled`));
        }, () => undefined);
      }
    }, Math.max(500, Math.floor(options.ackWaitMs / 3)));
    try {
      const outcome = await runJob(job, msg);
      if (outcome === 'handed-back') msg.nak(0);
      else msg.ack();
    } catch (err) {
      // The bus failed us (KV or JetStream unreachable): the job is delivered again later.
      log.error({ job: job.id, err: (err as Error).message }, 'image job could not be recorded; it will be delivered again');
      msg.nak(2000);
    } finally {
      clearInterval(working);
      local.delete(job.id);
    }
  };

  const runJob = async (job: ImageJob, msg: JsMsg): Promise<'done' | 'handed-back'> => {
    const attempt = msg.info.deliveryCount;
    const jobLog = log.child({ job: job.id, attempt });
    const found = await options.jobs.get(job.id);
    if (!found) {
      // The record expired (the job waited longer than jobs.keepHours): nothing to answer for it any more.
      jobLog.warn('image job without a record (expired?) dropped');
      return 'done';
    }
    if (['completed', 'failed', 'cancelled'].includes(found.record.state)) return 'done';
    const lifecycle = new JobLifecycle(options, job, jobLog);
    if (found.record.cancelRequested) {
      await lifecycle.cancelled('running');
      return 'done';
    }
    if (attempt > options.maxAttempts) {
      await lifecycle.failed(new ImageJobError('backend_error', `image job ${job.id} was given to a worker ${attempt - 1} times and never finished (the worker died each time?)`, 'attempts'));
      return 'done';
    }
    const started = await options.jobs.update(job.id, (r) => (r.state === 'queued' || r.state === 'running') && !r.cancelRequested
      ? { ...r, state: 'running', attempts: attempt, startedAt: r.startedAt ?? new Date().toISOString() } : undefined);
    if (!started?.changed) {
      if (started?.record.cancelRequested) await lifecycle.cancelled('running');
      return 'done';
    }
    const record = started.record;
    const queueWaitMs = Math.max(0, Date.parse(record.startedAt!) - Date.parse(record.submittedAt));
    await options.events.publish('imageStarted', { jobId: job.id, model: job.model, backend: job.backend, attempt, queueWaitMs, at: new Date().toISOString() },
      { subject: imageEventSubject('started', job.id), msgId: `${job.id}:started:${attempt}` });

    const running: Local = { cancel: new AbortController(), stop: new AbortController(), msg };
    local.set(job.id, running);
    const hold = job.progressTo ? keepalives.hold(job.progressTo) : undefined;
    const ctx = lifecycle.context(record, attempt, running, hold);
    const runStarted = performance.now();
    try {
      const output = await options.executor(ctx);
      await lifecycle.completed(output, queueWaitMs, performance.now() - runStarted);
    } catch (err) {
      if (err instanceof HandedBack || (running.stop.signal.aborted && !running.cancel.signal.aborted)) {
        jobLog.info('image job handed back to the queue');
        return 'handed-back';
      }
      if (running.cancel.signal.aborted) await lifecycle.cancelled('running');
      else await lifecycle.failed(err, queueWaitMs, performance.now() - runStarted);
    } finally {
      hold?.release();
    }
    return 'done';
  };

  const loop = (async () => {
    for await (const msg of messages) void handle(msg);
  })();
  log.info({ backend, concurrency: options.concurrency, durable }, 'taking image jobs');

  return {
    running: () => local.size,
    async stop() {
      await messages.close();
      await loop;
      const deadline = Date.now() + (options.stopGraceMs ?? 10_000);
      while (local.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      // What still runs goes back to the queue; the backend's work goes on, and the next worker takes it over.
      for (const l of local.values()) l.stop.abort();
      const handBackDeadline = Date.now() + 5000;
      while (local.size > 0 && Date.now() < handBackDeadline) await new Promise((r) => setTimeout(r, 50));
      cancels.unsubscribe();
      keepalives.stop();
    },
  };
}

/** The writes of one job's life: record, events, answers. Whoever moves the record to an end state publishes that end. */
class JobLifecycle {
  readonly #o: ServeImageJobsOptions;
  readonly #job: ImageJob;
  readonly #log: Logger;
  /** Progress events go out in order, one at a time. */
  #chain: Promise<void> = Promise.resolve();
  #lastRecordWrite = 0;
  #steps = 0;

  constructor(options: ServeImageJobsOptions, job: ImageJob, log: Logger) {
    this.#o = options;
    this.#job = job;
    this.#log = log;
  }

  context(record: ImageJobRecord, attempt: number, running: Local, hold: { touch(): void } | undefined): ImageJobContext {
    const job = this.#job;
    const { nc, events, jobs, files } = this.#o;
    const send = (frame: string, body: unknown): void => {
      if (!job.progressTo || nc.isClosed()) return;
      const headers = createHeaders();
      headers.set(H.stream, frame);
      headers.set(H.requestId, job.requestId);
      nc.publish(job.progressTo, encodeJson(body), { headers });
      hold?.touch();
    };
    return {
      job, record, attempt, log: this.#log,
      cancelSignal: running.cancel.signal,
      stopSignal: running.stop.signal,
      patch: async (change) => {
        const result = await jobs.update(job.id, (r) => ({ ...r, ...change }));
        if (!result) throw new GatewayError('internal_error', `image job ${job.id} has no record`);
        return result.record;
      },
      progress: (p) => {
        this.#steps = Math.max(this.#steps, p.step);
        send(ImageStreamFrame.progress, p);
        const at = new Date().toISOString();
        this.#chain = this.#chain.then(() => events.publish('imageProgress', { jobId: job.id, model: job.model, backend: job.backend, ...p, at }, {
          subject: imageEventSubject('progress', job.id), msgId: `${job.id}:progress:${attempt}:${p.node ?? ''}:${p.step}/${p.of}`,
        })).catch((err: unknown) => this.#log.warn({ err: (err as Error).message }, 'progress event not stored'));
        // The record's progress is for `status` readers: once a second is enough.
        if (Date.now() - this.#lastRecordWrite >= 1000) {
          this.#lastRecordWrite = Date.now();
          void jobs.update(job.id, (r) => (r.state === 'running' ? { ...r, progress: p } : undefined)).catch(() => undefined);
        }
      },
      partial: (frame) => send(ImageStreamFrame.partial, frame),
      readInput: (input) => readInput(files, input),
    };
  }

  async completed(output: ImageJobOutput, queueWaitMs: number, durationMs: number): Promise<void> {
    const job = this.#job;
    const { jobs, files, events, nc } = this.#o;
    if (output.images.length === 0) throw new ImageJobError('backend_error', `the ${job.backend} job produced no image (does the workflow save one?)`, 'no_output');
    const refs: ImageFileRef[] = [];
    const bytes = new Map<string, Uint8Array>();
    for (const image of output.images) {
      const ref = await files.put(image.data, {
        role: 'output', jobId: job.id, contentType: image.contentType, ...(job.apiKey && { apiKey: job.apiKey }),
        ...(image.width !== undefined && { width: image.width }), ...(image.height !== undefined && { height: image.height }),
      });
      const withPrompt = image.revisedPrompt ? { ...ref, revisedPrompt: image.revisedPrompt } : ref;
      refs.push(withPrompt);
      bytes.set(ref.id, image.data);
    }
    await this.#chain;
    const finishedAt = new Date().toISOString();
    const steps = output.steps ?? (this.#steps || undefined);
    const result = await jobs.update(job.id, (r) => (r.state === 'running' ? {
      ...r, state: 'completed', images: refs, finishedAt,
      ...(steps !== undefined && { progress: { step: steps, of: steps, percent: 100 } }),
      ...(output.usage && { usage: output.usage }), ...(output.costUsd !== undefined && { costUsd: output.costUsd }),
    } : undefined));
    if (!result?.changed) return;
    await events.publish('imageCompleted', {
      jobId: job.id, model: job.model, backend: job.backend, requestedModel: job.requestedModel, images: refs, attempts: result.record.attempts,
      queueWaitMs, durationMs, ...(steps !== undefined && { steps, stepsPerSecond: durationMs > 0 ? steps / (durationMs / 1000) : 0 }),
      ...(output.usage && { inputTokens: output.usage.inputTokens, outputTokens: output.usage.outputTokens }),
      ...(output.costUsd !== undefined && { costUsd: output.costUsd }), ...(job.apiKey && { apiKey: job.apiKey }), at: finishedAt,
    }, { subject: imageEventSubject('completed', job.id), msgId: `${job.id}:completed` });
    sendImageJobEnd(nc, result.record, { bytes });
    await this.#dropInputs();
    this.#log.info({ images: refs.length, durationMs: Math.round(durationMs) }, 'image job completed');
  }

  async failed(err: unknown, queueWaitMs?: number, durationMs?: number): Promise<void> {
    const job = this.#job;
    const { jobs, events, nc } = this.#o;
    const error = err instanceof GatewayError ? err : toGatewayError(err);
    const reason = err instanceof ImageJobError ? err.reason : error.code === 'internal_error' ? 'internal' : error.code;
    if (error.code === 'internal_error') this.#log.error({ err }, 'image job failed');
    await this.#chain;
    const finishedAt = new Date().toISOString();
    const entry = { code: error.code, status: error.status, message: error.message, reason, ...(error.param && { param: error.param }) };
    const result = await jobs.update(job.id, (r) => (r.state === 'running' || r.state === 'queued' ? { ...r, state: 'failed', error: entry, finishedAt } : undefined));
    if (!result?.changed) return;
    await events.publish('imageFailed', {
      jobId: job.id, model: job.model, backend: job.backend, error: entry, attempts: result.record.attempts,
      ...(err instanceof ImageJobError && err.node && { node: err.node }), ...(err instanceof ImageJobError && err.nodeType && { nodeType: err.nodeType }),
      ...(queueWaitMs !== undefined && { queueWaitMs }), ...(durationMs !== undefined && { durationMs }), ...(job.apiKey && { apiKey: job.apiKey }), at: finishedAt,
    }, { subject: imageEventSubject('failed', job.id), msgId: `${job.id}:failed` });
    sendImageJobEnd(nc, result.record, { error: imageJobError(result.record) });
    await this.#dropInputs();
    this.#log.info({ code: error.code, reason }, 'image job failed');
  }

  async cancelled(phase: 'queued' | 'running'): Promise<void> {
    const job = this.#job;
    const { jobs, events, nc } = this.#o;
    await this.#chain;
    const finishedAt = new Date().toISOString();
    const result = await jobs.update(job.id, (r) => (r.state === 'running' || r.state === 'queued' ? { ...r, state: 'cancelled', finishedAt } : undefined));
    if (!result?.changed) return;
    await events.publish('imageCancelled', { jobId: job.id, model: job.model, backend: job.backend, phase, ...(job.apiKey && { apiKey: job.apiKey }), at: finishedAt },
      { subject: imageEventSubject('cancelled', job.id), msgId: `${job.id}:cancelled` });
    sendImageJobEnd(nc, result.record, { error: imageJobError(result.record) });
    await this.#dropInputs();
    this.#log.info({ phase }, 'image job cancelled');
  }

  /** Input images were uploaded for this job only. */
  async #dropInputs(): Promise<void> {
    for (const input of [...(this.#job.images ?? []), ...(this.#job.mask ? [this.#job.mask] : [])]) {
      if ('file_id' in input) await this.#o.files.delete(input.file_id);
    }
  }
}

/** An input image: a file of the object store, or a `data:` URL. */
export async function readInput(files: ImageFiles, input: ImageInput): Promise<{ data: Uint8Array; contentType: string }> {
  if ('image_url' in input) {
    const m = /^data:(image\/(?:png|jpeg|webp));base64,(.*)$/s.exec(input.image_url);
    if (!m) throw new ImageJobError('invalid_request', 'an input image_url must be a data: URL of a PNG, JPEG or WebP image', 'validation', { param: 'images' });
    return { data: Buffer.from(m[2]!, 'base64'), contentType: m[1]! };
  }
  const file = await files.get(input.file_id);
  if (!file) throw new ImageJobError('invalid_request', `the input image ${input.file_id} does not exist (expired?)`, 'validation', { param: 'images' });
  return { data: file.data, contentType: file.info.metadata?.['contentType'] ?? 'image/png' };
}

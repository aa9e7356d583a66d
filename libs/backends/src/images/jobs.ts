import { jetstream, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import {
  GatewayError, ImageJobSchema, KeepaliveSender, Subjects, ensureDurableConsumer, imageEventSubject, validator,
  type EventPublisher, type ImageBackend, type ImageFiles, type ImageJob, type ImageJobRecord, type ImageJobStore, type Msg,
  type NatsConnection,
} from '@homelab/bus';
import type { Logger } from '@homelab/logging';
import { admitJob, cancelsOnlyIfQueued, heartbeatMs, imageJobsConsumer, queueWaitMs, startedRecord } from './delivery.ts';
import { HandedBack, ImageJobError, type ImageJobExecutor } from './executor.ts';
import { JobLifecycle } from './lifecycle.ts';

export { HandedBack, ImageJobError, type ImageJobContext, type ImageJobExecutor, type ImageJobOutput } from './executor.ts';
export { readInput } from './inputs.ts';

/*
 * The life of an image job on a worker, the same for every image backend (ComfyUI, OpenAI): take it
 * from the work queue (a durable pull consumer: at most `concurrency` unacknowledged at once, the rest
 * wait in order), move its record to `running` (compare-and-set: a cancel that got there first wins),
 * run it, keep the work queue told it is alive, store its images, record the outcome, publish the
 * event, answer whoever waits, and only then acknowledge it, so a worker that dies mid-job leaves it
 * to be delivered again. The backend part is one function, the executor (executor.ts).
 */

const checkJob = validator(ImageJobSchema);
const STREAM = 'IMAGE_JOBS';

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

/** Takes this backend's jobs from the work queue and runs them, `concurrency` at a time, in order. */
export async function serveImageJobs(options: ServeImageJobsOptions): Promise<ImageJobServer> {
  const config = imageJobsConsumer(options.backend, options);
  await ensureDurableConsumer(options.nc, STREAM, config);
  const consumer = await jetstream(options.nc).consumers.get(STREAM, config.durable_name);
  const messages = await consumer.consume({ max_messages: options.concurrency, expires: 5000, idle_heartbeat: 1000 });
  const worker = new ImageJobWorker(options, messages);
  options.log.info({ backend: options.backend, concurrency: options.concurrency, durable: config.durable_name }, 'taking image jobs');
  // Plain functions, not the worker's methods: callers pass `stop` around on its own (a list of
  // shutdown steps), where a method would lose its `this` (as serveBackend's once did).
  return { running: () => worker.running(), stop: () => worker.stop() };
}

function cancelledError(id: string): GatewayError {
  return new GatewayError('cancelled', `image job ${id} was cancelled`);
}

/** A job running here: its executor's two stop signals. */
interface RunningJob {
  cancel: AbortController;
  stop: AbortController;
}

class ImageJobWorker implements ImageJobServer {
  readonly #o: ServeImageJobsOptions;
  readonly #messages: ConsumerMessages;
  readonly #running = new Map<string, RunningJob>();
  readonly #keepalives: KeepaliveSender;
  readonly #cancels: ReturnType<NatsConnection['subscribe']>;
  readonly #loop: Promise<void>;

  constructor(options: ServeImageJobsOptions, messages: ConsumerMessages) {
    this.#o = options;
    this.#messages = messages;
    const { nc } = options;
    this.#keepalives = new KeepaliveSender((to, headers) => { if (!nc.isClosed()) nc.publish(to, undefined, { headers }); });
    this.#cancels = nc.subscribe(Subjects.imagesCancel.subject, { callback: (_err, msg) => this.#onCancel(msg) });
    this.#loop = (async () => {
      for await (const msg of messages) void this.#take(msg);
    })();
  }

  running(): number {
    return this.#running.size;
  }

  async stop(): Promise<void> {
    await this.#messages.close();
    await this.#loop;
    await this.#waitForRunning(this.#o.stopGraceMs ?? 10_000, 100);
    // What still runs goes back to the queue; the backend's work goes on, and the next worker takes it over.
    for (const running of this.#running.values()) running.stop.abort();
    await this.#waitForRunning(5000, 50);
    this.#cancels.unsubscribe();
    this.#keepalives.stop();
  }

  async #waitForRunning(timeoutMs: number, pollMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.#running.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, pollMs));
  }

  /** A cancel for a job running here interrupts it; one for a job still queued is the router's (KV) business. */
  #onCancel(msg: Msg): void {
    const id = msg.subject.split('.')[2] ?? '';
    const running = this.#running.get(id);
    if (running && !cancelsOnlyIfQueued(msg.data)) running.cancel.abort(cancelledError(id));
  }

  /** One delivery, acknowledged only once its outcome is recorded: a worker that dies leaves it to the next. */
  async #take(msg: JsMsg): Promise<void> {
    let job: ImageJob;
    try {
      job = checkJob.parse(msg.json());
    } catch (err) {
      this.#o.log.error({ seq: msg.seq, err: (err as Error).message }, 'invalid image job dropped');
      tellServer(() => msg.term());
      return;
    }
    const beat = setInterval(() => this.#beat(job.id, msg), heartbeatMs(this.#o.ackWaitMs));
    try {
      const outcome = await this.#run(job, msg);
      tellServer(() => (outcome === 'handed-back' ? msg.nak(0) : msg.ack()));
    } catch (err) {
      // The bus failed us (KV or JetStream unreachable): the job is delivered again later.
      this.#o.log.error({ job: job.id, err: (err as Error).message }, 'image job could not be recorded; it will be delivered again');
      tellServer(() => msg.nak(2000));
    } finally {
      clearInterval(beat);
      this.#running.delete(job.id);
    }
  }

  /** Keeps the delivery; a cancel this worker missed (it was reconnecting) is in the record, read with each beat. */
  #beat(id: string, msg: JsMsg): void {
    tellServer(() => msg.working());
    const running = this.#running.get(id);
    if (!running || running.cancel.signal.aborted) return;
    void this.#o.jobs.get(id).then((found) => {
      if (found?.record.cancelRequested) running.cancel.abort(cancelledError(id));
    }, () => undefined);
  }

  async #run(job: ImageJob, msg: JsMsg): Promise<'done' | 'handed-back'> {
    const attempt = msg.info.deliveryCount;
    const log = this.#o.log.child({ job: job.id, attempt });
    const lifecycle = new JobLifecycle(this.#o, job, log);
    const found = await this.#o.jobs.get(job.id);
    switch (admitJob(found?.record, attempt, this.#o.maxAttempts)) {
      case 'no-record':
        // The record expired (the job waited longer than jobs.keepHours): nothing to answer for it any more.
        log.warn('image job without a record (expired?) dropped');
        return 'done';
      case 'ended':
        return 'done';
      case 'cancel':
        await lifecycle.cancelled('running');
        return 'done';
      case 'too-many-attempts':
        await lifecycle.failed(new ImageJobError('backend_error', `image job ${job.id} was given to a worker ${attempt - 1} times and never finished (the worker died each time?)`, 'attempts'));
        return 'done';
      case 'start':
        break;
    }
    const record = await this.#start(job, attempt, lifecycle);
    if (!record) return 'done';
    return this.#execute(job, record, attempt, lifecycle, log);
  }

  /** Moves the record to `running` and says so; undefined when another writer (a cancel) got there first. */
  async #start(job: ImageJob, attempt: number, lifecycle: JobLifecycle): Promise<ImageJobRecord | undefined> {
    const started = await this.#o.jobs.update(job.id, startedRecord(attempt, new Date()));
    if (!started?.changed) {
      if (started?.record.cancelRequested) await lifecycle.cancelled('running');
      return undefined;
    }
    const record = started.record;
    await this.#o.events.publish('imageStarted', {
      jobId: job.id, model: job.model, backend: job.backend, attempt, queueWaitMs: queueWaitMs(record), at: new Date().toISOString(),
    }, { subject: imageEventSubject('started', job.id), msgId: `${job.id}:started:${attempt}` });
    return record;
  }

  /** Runs the executor and records how it ended, unless this worker stopped: then the job goes back to the queue. */
  async #execute(job: ImageJob, record: ImageJobRecord, attempt: number, lifecycle: JobLifecycle, log: Logger): Promise<'done' | 'handed-back'> {
    const running: RunningJob = { cancel: new AbortController(), stop: new AbortController() };
    this.#running.set(job.id, running);
    const hold = job.progressTo ? this.#keepalives.hold(job.progressTo) : undefined;
    const ctx = lifecycle.context(record, attempt, { cancel: running.cancel.signal, stop: running.stop.signal }, hold);
    const waitedMs = queueWaitMs(record);
    const runStarted = performance.now();
    try {
      const output = await this.#o.executor(ctx);
      await lifecycle.completed(output, waitedMs, performance.now() - runStarted);
    } catch (err) {
      if (err instanceof HandedBack || (running.stop.signal.aborted && !running.cancel.signal.aborted)) {
        log.info('image job handed back to the queue');
        return 'handed-back';
      }
      if (running.cancel.signal.aborted) await lifecycle.cancelled('running');
      else await lifecycle.failed(err, waitedMs, performance.now() - runStarted);
    } finally {
      hold?.release();
    }
    return 'done';
  }
}

/**
 * An ack, a nak or a heartbeat to JetStream. On a connection that is closing (a worker stopping past
 * its grace) it cannot go out and nats.js throws: JetStream then delivers the job again after its
 * ack wait, which is what the ack would have arranged anyway.
 */
function tellServer(send: () => void): void {
  try {
    send();
  } catch {
    // The connection is closing: the delivery comes back by itself.
  }
}

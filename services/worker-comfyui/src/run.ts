import { randomInt, randomUUID } from 'node:crypto';
import { GatewayError } from '@homelab/bus';
import { HandedBack, ImageJobError, type ImageJobContext, type ImageJobOutput } from '@homelab/backends/images';
import type { ImagesConfig } from '@homelab/config';
import { ComfyValidationError, type ComfyClient, type ComfyFrame, type ComfyHistoryEntry, type ComfyImageRef } from './comfy-client.ts';
import { fillWorkflow, stepsOf, type LoadedModel } from './workflow.ts';
import type WebSocket from 'ws';

/*
 * One image job at ComfyUI: upload the inputs, fill the workflow, submit it with the job id as the
 * websocket client id and a prompt id recorded before submitting, follow it on the websocket (progress,
 * previews, outputs), and fetch the outputs. What can go wrong, and what happens:
 * - the websocket drops: reconnect with the same client id (ComfyUI then sends that client's messages
 *   again), and ask /history and /queue where the prompt is;
 * - ComfyUI restarted and lost the prompt (in neither /history nor /queue): submit it again, up to
 *   `resubmitLost` times, then fail (`lost`);
 * - ComfyUI unreachable longer than `downTimeoutMs`: fail (`comfyui_unavailable`);
 * - the worker died and this is a takeover (`record.promptId` set): the same checks, so a prompt that
 *   finished or still runs is not generated twice;
 * - a cancel: interrupt the prompt when it is the one running, delete it from ComfyUI's queue when it waits.
 */

export interface ComfyRunDeps {
  client: ComfyClient;
  models: ReadonlyMap<string, LoadedModel>;
  settings: NonNullable<ImagesConfig['comfyui']>;
}

type Event =
  | { kind: 'frame'; frame: ComfyFrame }
  | { kind: 'closed' }
  | { kind: 'cancel' }
  | { kind: 'stop' }
  | { kind: 'timeout' };

/** The sub-folder of ComfyUI's input folder that the gateway's uploads go to. */
const UPLOAD_SUBFOLDER = 'homelab';

export async function runComfyJob(ctx: ImageJobContext, deps: ComfyRunDeps): Promise<ImageJobOutput> {
  const { job } = ctx;
  const loaded = deps.models.get(job.model);
  if (!loaded) throw new ImageJobError('model_not_found', `this ComfyUI worker has no image model '${job.model}' (its config differs from the router's?)`, 'validation', { param: 'model' });
  const run = new PromptRun(ctx, deps, loaded);
  try {
    return await run.execute();
  } finally {
    run.close();
  }
}

class PromptRun {
  readonly #ctx: ImageJobContext;
  readonly #deps: ComfyRunDeps;
  readonly #loaded: LoadedModel;
  readonly #queue: Event[] = [];
  #wake: (() => void) | undefined;
  #socket: WebSocket | undefined;
  #promptId: string | undefined;
  #submissions: number;
  /** Outputs seen in `executed` messages; a gap in the websocket means /history has the full list. */
  readonly #outputs: ComfyImageRef[] = [];
  #missedMessages = false;
  #sampler = { value: 0, max: 0 };
  #node: string | undefined;
  #partialsSent = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(ctx: ImageJobContext, deps: ComfyRunDeps, loaded: LoadedModel) {
    this.#ctx = ctx;
    this.#deps = deps;
    this.#loaded = loaded;
    this.#promptId = ctx.record.promptId;
    this.#submissions = ctx.record.submissions ?? 0;
  }

  async execute(): Promise<ImageJobOutput> {
    const { cancelSignal, stopSignal } = this.#ctx;
    cancelSignal.addEventListener('abort', () => this.#push({ kind: 'cancel' }), { once: true });
    stopSignal.addEventListener('abort', () => this.#push({ kind: 'stop' }), { once: true });
    this.#timer = setTimeout(() => this.#push({ kind: 'timeout' }), this.#deps.settings.jobTimeoutMs);
    if (cancelSignal.aborted) throw cancelled(this.#ctx.job.id);

    const prompt = await this.#prepare();
    await this.#connect();
    if (this.#promptId) {
      // A takeover: the prompt may have finished, may still run, or may be lost with a ComfyUI restart.
      this.#missedMessages = true;
      const where = await this.#whereIs(this.#promptId);
      if (where.state === 'done') return this.#finish(where.entry);
      if (where.state === 'lost') await this.#resubmit(prompt);
    } else {
      await this.#submit(prompt);
    }
    for (;;) {
      const event = (await this.#next())!;
      switch (event.kind) {
        case 'stop': throw new HandedBack();
        case 'cancel': await this.#cancelAtComfy(); throw cancelled(this.#ctx.job.id);
        case 'timeout':
          await this.#cancelAtComfy();
          throw new ImageJobError('timeout', `the image job ran longer than ${this.#deps.settings.jobTimeoutMs} ms at ComfyUI (images.comfyui.jobTimeoutMs)`, 'timeout');
        case 'closed': {
          this.#missedMessages = true;
          await this.#reconnect();
          const where = await this.#whereIs(this.#promptId!);
          if (where.state === 'done') return this.#finish(where.entry);
          if (where.state === 'lost') await this.#resubmit(prompt);
          break;
        }
        case 'frame': {
          const outcome = this.#onFrame(event.frame);
          if (outcome === 'success') return this.#finish();
          if (outcome) throw outcome;
          break;
        }
      }
    }
  }

  close(): void {
    clearTimeout(this.#timer);
    this.#socket?.removeAllListeners('close');
    this.#socket?.close();
    this.#socket = undefined;
  }

  /** Uploads the input images and fills the workflow. */
  async #prepare(): Promise<ReturnType<typeof fillWorkflow>> {
    const { job } = this.#ctx;
    const { mapping } = this.#loaded.model;
    const values: Parameters<typeof fillWorkflow>[1] = {
      prompt: job.prompt,
      ...(job.negativePrompt !== undefined && { negativePrompt: job.negativePrompt }),
      ...(job.width !== undefined && { width: job.width }), ...(job.height !== undefined && { height: job.height }),
      // A job without a seed gets a random one, as ComfyUI's "randomize" would.
      seed: job.seed ?? randomInt(0, 2 ** 47),
      ...(job.steps !== undefined && { steps: job.steps }),
      ...(mapping.batchSize && { batchSize: job.n }),
      ...(job.strength !== undefined && { denoise: job.strength }),
    };
    if (mapping.image) {
      const input = job.images?.[0];
      if (!input) throw new ImageJobError('invalid_request', `the image model '${job.model}' edits an image: send one`, 'validation', { param: 'image' });
      values.image = await this.#upload(input, 'image');
    }
    if (mapping.mask && job.mask) values.mask = await this.#upload(job.mask, 'mask');
    else if (mapping.mask) throw new ImageJobError('invalid_request', `the image model '${job.model}' inpaints: send a mask`, 'validation', { param: 'mask' });
    return fillWorkflow(this.#loaded, values);
  }

  async #upload(input: NonNullable<ImageJobContext['job']['mask']>, role: 'image' | 'mask'): Promise<string> {
    const { data, contentType } = await this.#ctx.readInput(input);
    const ext = contentType === 'image/jpeg' ? 'jpg' : contentType === 'image/webp' ? 'webp' : 'png';
    return this.#whileReachable(() => this.#deps.client.upload(data, `${this.#ctx.job.id}-${role}.${ext}`, UPLOAD_SUBFOLDER, contentType));
  }

  /** Records the prompt id first, then submits: a worker taking the job over finds the prompt by it. */
  async #submit(prompt: ReturnType<typeof fillWorkflow>): Promise<void> {
    const promptId = randomUUID();
    this.#submissions++;
    await this.#ctx.patch({ promptId, submissions: this.#submissions });
    this.#promptId = promptId;
    this.#sampler = { value: 0, max: stepsOf(prompt, this.#loaded.model.mapping) ?? 0 };
    try {
      const accepted = await this.#whileReachable(() => this.#deps.client.submit(prompt, this.#ctx.job.id, promptId));
      if (accepted.promptId !== promptId) {
        this.#promptId = accepted.promptId;
        await this.#ctx.patch({ promptId: accepted.promptId });
      }
    } catch (err) {
      if (err instanceof ComfyValidationError) throw new ImageJobError('invalid_request', err.message, 'validation', { param: 'prompt', cause: err });
      throw err;
    }
  }

  async #resubmit(prompt: ReturnType<typeof fillWorkflow>): Promise<void> {
    if (this.#submissions > this.#deps.settings.resubmitLost) {
      throw new ImageJobError('backend_unavailable', `ComfyUI lost the job's prompt (it restarted?) ${this.#submissions} time(s); not submitted again (images.comfyui.resubmitLost: ${this.#deps.settings.resubmitLost})`, 'lost');
    }
    this.#ctx.log.warn({ promptId: this.#promptId }, 'ComfyUI lost the prompt (restarted?): submitting it again');
    this.#outputs.length = 0;
    this.#missedMessages = false;
    await this.#submit(prompt);
  }

  async #whereIs(promptId: string): Promise<{ state: 'done'; entry: ComfyHistoryEntry } | { state: 'queued' } | { state: 'lost' }> {
    const entry = await this.#whileReachable(() => this.#deps.client.history(promptId));
    if (entry) return { state: 'done', entry };
    const queue = await this.#whileReachable(() => this.#deps.client.queue());
    if (queue.running.includes(promptId) || queue.pending.includes(promptId)) return { state: 'queued' };
    // It may have finished between the two questions.
    const late = await this.#whileReachable(() => this.#deps.client.history(promptId));
    return late ? { state: 'done', entry: late } : { state: 'lost' };
  }

  /** What a frame means for the job: nothing yet, success, or an error to end it with. */
  #onFrame(frame: ComfyFrame): 'success' | Error | undefined {
    const { job } = this.#ctx;
    if (frame.kind === 'preview') {
      this.#maybePartial(frame);
      return undefined;
    }
    const { type, data } = frame;
    const promptId = data['prompt_id'];
    // Messages of an earlier submission of this job (before ComfyUI lost it) are not this prompt's.
    if (promptId !== undefined && promptId !== this.#promptId) return undefined;
    switch (type) {
      case 'executing':
        if (data['node'] === null && promptId === this.#promptId) return 'success';
        if (typeof data['node'] === 'string') this.#node = data['node'];
        return undefined;
      case 'progress': {
        const value = Number(data['value']);
        const max = Number(data['max']);
        if (!Number.isFinite(value) || !Number.isFinite(max) || max <= 0) return undefined;
        const node = typeof data['node'] === 'string' ? data['node'] : this.#node;
        this.#sampler = { value, max };
        this.#ctx.progress({
          step: value, of: max, percent: Math.round((value / max) * 1000) / 10,
          ...(node && { node }), ...(node && this.#loaded.workflow[node] && { nodeType: this.#loaded.workflow[node]!.class_type }),
        });
        return undefined;
      }
      case 'executed': {
        const images = (data['output'] as { images?: ComfyImageRef[] } | undefined)?.images ?? [];
        for (const image of images) if (image.type === 'output') this.#outputs.push(image);
        return undefined;
      }
      case 'execution_success':
        return 'success';
      case 'execution_error':
        return executionError(data);
      case 'execution_interrupted':
        return job && this.#ctx.cancelSignal.aborted ? cancelled(job.id)
          : new ImageJobError('backend_error', `the prompt was interrupted at ComfyUI (by someone else?) in ${String(data['node_type'] ?? 'a node')}`, 'interrupted');
      default:
        return undefined;
    }
  }

  /** Spreads the requested partial images over the sampler's steps: partial i once i+1 of (k+1) parts are done. */
  #maybePartial(frame: Extract<ComfyFrame, { kind: 'preview' }>): void {
    const wanted = this.#ctx.job.partialImages;
    if (wanted === 0 || !this.#ctx.job.progressTo || this.#partialsSent >= wanted || this.#sampler.max === 0) return;
    const done = this.#sampler.value / this.#sampler.max;
    if (done < (this.#partialsSent + 1) / (wanted + 1)) return;
    this.#ctx.partial({ index: this.#partialsSent, b64_json: frame.image.toString('base64'), output_format: frame.format, ...pngSizeOf(frame) });
    this.#partialsSent++;
  }

  async #finish(entry?: ComfyHistoryEntry): Promise<ImageJobOutput> {
    let refs = [...this.#outputs];
    if (entry || this.#missedMessages || refs.length === 0) {
      // ComfyUI writes the history just after it says the prompt succeeded: ask again briefly.
      let history = entry;
      for (let i = 0; !history && i < 20; i++) {
        history = await this.#deps.client.history(this.#promptId!);
        if (!history) await new Promise((r) => setTimeout(r, 100));
      }
      if (history?.status?.status_str === 'error') throw historyError(history);
      refs = Object.values(history?.outputs ?? {}).flatMap((o) => o.images ?? []).filter((i) => i.type === 'output');
    }
    const images: ImageJobOutput['images'] = [];
    for (const ref of refs) {
      const { data, contentType } = await this.#whileReachable(() => this.#deps.client.view(ref));
      images.push({ data, contentType, ...pngSize(data) });
    }
    return { images, ...(this.#sampler.max > 0 && { steps: this.#sampler.max }) };
  }

  /** Cancels at ComfyUI: interrupt when this prompt is the one running, delete it when it waits. */
  async #cancelAtComfy(): Promise<void> {
    const promptId = this.#promptId;
    if (!promptId) return;
    try {
      const queue = await this.#deps.client.queue();
      if (queue.pending.includes(promptId)) await this.#deps.client.deleteQueued(promptId);
      else if (queue.running.includes(promptId)) {
        await this.#deps.client.interrupt(promptId);
        // Wait (briefly) for ComfyUI to say it stopped, so the GPU is free when the cancel is reported.
        const until = Date.now() + 10_000;
        while (Date.now() < until) {
          const event = await this.#next(until - Date.now());
          if (!event || event.kind === 'closed' || event.kind === 'stop') break;
          if (event.kind === 'frame' && event.frame.kind === 'json' && event.frame.data['prompt_id'] === promptId
            && ['execution_interrupted', 'execution_success', 'execution_error'].includes(event.frame.type)) break;
        }
      }
    } catch (err) {
      this.#ctx.log.warn({ err: (err as Error).message }, 'could not cancel the prompt at ComfyUI');
    }
  }

  async #connect(): Promise<void> {
    this.#socket = await this.#whileReachable(() => this.#deps.client.openSocket(
      this.#ctx.job.id,
      (frame) => this.#push({ kind: 'frame', frame }),
      () => this.#push({ kind: 'closed' }),
    ));
  }

  async #reconnect(): Promise<void> {
    this.#ctx.log.warn('ComfyUI websocket closed; reconnecting');
    this.#socket = undefined;
    await this.#connect();
  }

  /**
   * Runs a ComfyUI call, retrying while ComfyUI is unreachable, for `downTimeoutMs` at most; a cancel
   * or a stop ends the wait. Other errors go through.
   */
  async #whileReachable<T>(call: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.#deps.settings.downTimeoutMs;
    for (let attempt = 1; ; attempt++) {
      if (this.#ctx.stopSignal.aborted) throw new HandedBack();
      if (this.#ctx.cancelSignal.aborted) throw cancelled(this.#ctx.job.id);
      try {
        return await call();
      } catch (err) {
        if (!(err instanceof GatewayError) || err.code !== 'backend_unavailable') throw err;
        if (Date.now() >= deadline) {
          throw new ImageJobError('backend_unavailable', `${err.message}; gave up after ${this.#deps.settings.downTimeoutMs} ms (images.comfyui.downTimeoutMs)`, 'comfyui_unavailable', { cause: err });
        }
        await new Promise((r) => setTimeout(r, Math.min(250 * attempt, 2000)));
      }
    }
  }

  #push(event: Event): void {
    this.#queue.push(event);
    this.#wake?.();
  }

  async #next(timeoutMs?: number): Promise<Event | undefined> {
    if (this.#queue.length === 0) {
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        if (timeoutMs !== undefined) setTimeout(resolve, Math.max(0, timeoutMs)).unref();
      });
      this.#wake = undefined;
    }
    return this.#queue.shift();
  }
}

function cancelled(jobId: string): GatewayError {
  return new GatewayError('cancelled', `image job ${jobId} was cancelled`);
}

/** ComfyUI's `execution_error`: out of GPU memory, or an exception in a node. */
export function executionError(data: Record<string, unknown>): ImageJobError {
  const nodeType = typeof data['node_type'] === 'string' ? data['node_type'] : 'a node';
  const node = typeof data['node_id'] === 'string' ? data['node_id'] : undefined;
  const type = String(data['exception_type'] ?? 'Exception');
  const message = String(data['exception_message'] ?? '').split('\n')[0]!.slice(0, 300);
  const where = `${nodeType}${node ? ` (node ${node})` : ''}`;
  if (/OutOfMemory/i.test(type) || /out of memory/i.test(message)) {
    return new ImageJobError('backend_error', `ComfyUI ran out of GPU memory in ${where}: try a smaller size or fewer images`, 'out_of_memory', { ...(node && { node }), nodeType, status: 507 });
  }
  return new ImageJobError('backend_error', `ComfyUI failed in ${where}: ${type}: ${message}`, 'node_error', { ...(node && { node }), nodeType });
}

/** A prompt that ended in error while nobody listened: the error is in its history messages. */
function historyError(entry: ComfyHistoryEntry): ImageJobError {
  const messages = entry.status?.messages ?? [];
  const error = messages.find(([type]) => type === 'execution_error');
  if (error) return executionError(error[1]);
  const interrupted = messages.find(([type]) => type === 'execution_interrupted');
  if (interrupted) return new ImageJobError('backend_error', `the prompt was interrupted at ComfyUI in ${String(interrupted[1]['node_type'] ?? 'a node')}`, 'interrupted');
  return new ImageJobError('backend_error', 'ComfyUI says the prompt failed', 'node_error');
}

/** Width and height of a PNG (from its IHDR); nothing for other formats. */
export function pngSize(data: Uint8Array): { width?: number; height?: number } {
  if (data.length < 24 || data[0] !== 0x89 || data[1] !== 0x50 || data[12] !== 0x49 || data[13] !== 0x48) return {};
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  return { width: view.getUint32(16), height: view.getUint32(20) };
}

function pngSizeOf(frame: Extract<ComfyFrame, { kind: 'preview' }>): { width?: number; height?: number } {
  return frame.format === 'png' ? pngSize(frame.image) : {};
}

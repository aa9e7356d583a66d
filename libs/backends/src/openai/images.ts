import OpenAI, { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError, toFile } from 'openai';
import { GatewayError, ImageFiles, ImageJobStore, type EventPublisher, type NatsConnection } from '@homelab/bus';
import type { CloudBackend, ImagesConfig } from '@homelab/config';
import type { Logger } from '@homelab/logging';
import { ImageJobError, serveImageJobs, type ImageJobContext, type ImageJobExecutor, type ImageJobOutput, type ImageJobServer } from '../images/jobs.ts';

/*
 * Cloud images: OpenAI's images API through the official SDK, as an image job executor (the job's
 * life is the same as ComfyUI's: libs/backends/src/images/jobs.ts). gpt-image models answer base64
 * and report tokens; dall-e models are asked for base64 too, so the images land in the object store
 * like every other image. The price per image (`images.prices`) makes the job's cost.
 */

export interface OpenAIImagesOptions {
  baseURL: string;
  apiKey: string;
  timeoutMs: number;
  prices: ImagesConfig['prices'];
}

export function createOpenAIImageExecutor(options: OpenAIImagesOptions): ImageJobExecutor {
  const client = new OpenAI({ apiKey: options.apiKey, baseURL: options.baseURL, timeout: options.timeoutMs, maxRetries: 1 });
  return async (ctx) => {
    const { job } = ctx;
    const signal = AbortSignal.any([ctx.cancelSignal, ctx.stopSignal]);
    const common = {
      model: job.model, prompt: job.prompt, n: job.n, ...(job.size && { size: job.size as '1024x1024' }),
      ...(job.outputFormat !== 'png' && { output_format: job.outputFormat }),
      // gpt-image answers base64 always and refuses response_format; dall-e is asked for it.
      ...(!job.model.startsWith('gpt-image') && { response_format: 'b64_json' as const }),
      ...job.options,
    };
    const stream = job.partialImages > 0 && job.model.startsWith('gpt-image');
    try {
      const images: ImageJobOutput['images'] = [];
      let usage: ImageJobOutput['usage'];
      if (job.kind === 'edit') {
        const inputs = await Promise.all((job.images ?? []).map(async (input, i) => {
          const { data, contentType } = await ctx.readInput(input);
          return toFile(Buffer.from(data.buffer, data.byteOffset, data.byteLength), `image-${i}.${extension(contentType)}`, { type: contentType });
        }));
        const mask = job.mask ? await ctx.readInput(job.mask) : undefined;
        const params = {
          ...common, image: inputs.length === 1 ? inputs[0]! : inputs,
          ...(mask && { mask: await toFile(Buffer.from(mask.data), `mask.${extension(mask.contentType)}`, { type: mask.contentType }) }),
        };
        if (stream) usage = await collectStream(await client.images.edit({ ...params, stream: true, partial_images: job.partialImages }, { signal }), ctx, images);
        else usage = collect(await client.images.edit(params, { signal }), images, job.outputFormat);
      } else if (stream) {
        usage = await collectStream(await client.images.generate({ ...common, stream: true, partial_images: job.partialImages }, { signal }), ctx, images);
      } else {
        usage = collect(await client.images.generate(common, { signal }), images, job.outputFormat);
      }
      const price = options.prices[`openai/${job.model}`] ?? options.prices['openai/*'];
      return { images, ...(usage && { usage }), ...(price !== undefined && { costUsd: price * images.length }) };
    } catch (err) {
      throw fromOpenAIError(err, ctx);
    }
  };
}

function collect(response: OpenAI.ImagesResponse, images: ImageJobOutput['images'], format: string): ImageJobOutput['usage'] {
  for (const item of response.data ?? []) {
    if (!item.b64_json) throw new ImageJobError('backend_error', 'OpenAI answered an image without b64_json', 'upstream');
    images.push({ data: Buffer.from(item.b64_json, 'base64'), contentType: `image/${response.output_format ?? format}`, ...sizeOf(response.size), ...(item.revised_prompt && { revisedPrompt: item.revised_prompt }) });
  }
  return response.usage ? { inputTokens: response.usage.input_tokens, outputTokens: response.usage.output_tokens } : undefined;
}

async function collectStream(
  stream: AsyncIterable<OpenAI.ImageGenStreamEvent | OpenAI.ImageEditStreamEvent>, ctx: ImageJobContext, images: ImageJobOutput['images'],
): Promise<ImageJobOutput['usage']> {
  let usage: ImageJobOutput['usage'];
  for await (const event of stream) {
    if (event.type === 'image_generation.partial_image' || event.type === 'image_edit.partial_image') {
      ctx.partial({ index: event.partial_image_index, b64_json: event.b64_json, output_format: event.output_format, ...sizeOf(event.size) });
    } else {
      images.push({ data: Buffer.from(event.b64_json, 'base64'), contentType: `image/${event.output_format}`, ...sizeOf(event.size) });
      usage = { inputTokens: (usage?.inputTokens ?? 0) + event.usage.input_tokens, outputTokens: (usage?.outputTokens ?? 0) + event.usage.output_tokens };
    }
  }
  return usage;
}

function sizeOf(size: string | undefined): { width?: number; height?: number } {
  const m = /^(\d+)x(\d+)$/.exec(size ?? '');
  return m ? { width: Number(m[1]), height: Number(m[2]) } : {};
}

function extension(contentType: string): string {
  return contentType === 'image/jpeg' ? 'jpg' : contentType === 'image/webp' ? 'webp' : 'png';
}

/** OpenAI's errors as the gateway's: the status kept, the key never in a message. */
function fromOpenAIError(err: unknown, ctx: ImageJobContext): unknown {
  if (err instanceof GatewayError) return err;
  if (err instanceof APIUserAbortError || ctx.cancelSignal.aborted || ctx.stopSignal.aborted) {
    return ctx.cancelSignal.aborted ? new GatewayError('cancelled', `image job ${ctx.job.id} was cancelled`) : err;
  }
  if (err instanceof APIConnectionTimeoutError) return new ImageJobError('timeout', 'OpenAI did not answer the image request in time', 'timeout', { cause: err });
  if (err instanceof APIConnectionError) return new ImageJobError('backend_unavailable', 'OpenAI is unreachable', 'upstream', { cause: err });
  if (err instanceof APIError) {
    const message = `OpenAI: ${String((err.error as { message?: string } | undefined)?.message ?? err.message).replace(/sk-[A-Za-z0-9_*-]+/g, 'sk-…')}`;
    const param = (err.error as { param?: string } | undefined)?.param ?? undefined;
    const status = err.status ?? 502;
    const code = status === 400 ? 'invalid_request' : status === 401 ? 'unauthorized' : status === 403 ? 'forbidden' : status === 404 ? 'model_not_found'
      : status === 429 ? 'rate_limited' : status >= 500 ? 'backend_error' : 'backend_error';
    return new ImageJobError(code, message, status === 400 ? 'validation' : 'upstream', { status: status >= 500 ? 502 : status, ...(param && { param }), cause: err });
  }
  return err;
}

/** worker-cloud's image jobs: OpenAI's, from the work queue, when an OpenAI key is configured. */
export async function serveOpenAIImageJobs(o: {
  nc: NatsConnection; log: Logger; events: EventPublisher; openai: CloudBackend; images: ImagesConfig; replicas: number;
}): Promise<ImageJobServer> {
  const jobs = await ImageJobStore.open(o.nc, { replicas: o.replicas, keepHours: o.images.jobs.keepHours });
  const files = await ImageFiles.open(o.nc, { replicas: o.replicas, ttlHours: o.images.files.ttlHours });
  return serveImageJobs({
    nc: o.nc, log: o.log, events: o.events, jobs, files, backend: 'openai',
    // Cloud jobs wait for the network, not a GPU: many at once.
    concurrency: Math.max(1, o.openai.maxConcurrent || 32), ackWaitMs: o.images.jobs.ackWaitMs, maxAttempts: o.images.jobs.maxAttempts,
    executor: createOpenAIImageExecutor({ baseURL: o.openai.baseURL, apiKey: o.openai.apiKey, timeoutMs: o.openai.totalTimeoutMs, prices: o.images.prices }),
  });
}

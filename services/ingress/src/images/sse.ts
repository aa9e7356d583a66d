import type { FastifyReply } from 'fastify';
import type { GatewayError, ImageJobResult, ImagePartialFrame, ImageSubmitReply } from '@homelab/bus';
import { openAIImageUsage, type AnsweredImage } from './answer.ts';

const SSE_KEEPALIVE = Buffer.from(': keepalive\n\n');

/**
 * OpenAI's image streaming events (`image_generation.*`, `image_edit.*`) on an SSE response. The
 * response (200) starts with the first thing written, keepalives included, since a job may wait in
 * its queue for minutes; an error after that can only be an `error` event.
 */
export class ImageEventWriter {
  readonly #reply: FastifyReply;
  readonly #prefix: string;
  readonly #job: ImageSubmitReply;
  #started = false;

  constructor(reply: FastifyReply, operation: 'generation' | 'edit', job: ImageSubmitReply) {
    this.#reply = reply;
    this.#prefix = operation === 'edit' ? 'image_edit' : 'image_generation';
    this.#job = job;
  }

  keepalive(): void {
    this.#start();
    this.#write(SSE_KEEPALIVE);
  }

  partial(frame: ImagePartialFrame): void {
    this.#event(`${this.#prefix}.partial_image`, {
      b64_json: frame.b64_json, created_at: Math.floor(Date.now() / 1000), partial_image_index: frame.index,
      ...this.#shape(frame.width && frame.height ? `${frame.width}x${frame.height}` : undefined), output_format: frame.output_format,
    });
  }

  completed(images: AnsweredImage[], result: ImageJobResult): void {
    for (const { b64, ref } of images) {
      this.#event(`${this.#prefix}.completed`, {
        b64_json: b64, created_at: result.created, ...this.#shape(ref.width && ref.height ? `${ref.width}x${ref.height}` : undefined),
        usage: openAIImageUsage(result.usage),
      });
    }
    this.#reply.raw.end();
  }

  error(error: GatewayError): void {
    this.#event('error', { ...error.toOpenAI() });
    this.#reply.raw.end();
  }

  #shape(size: string | undefined): Record<string, unknown> {
    return { size: size ?? this.#job.size ?? 'auto', quality: 'auto', background: 'auto', output_format: this.#job.outputFormat };
  }

  #event(type: string, data: Record<string, unknown>): void {
    this.#start();
    this.#write(Buffer.from(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`));
  }

  /** Takes the response from Fastify: the headers set so far (the job's) go out with the stream's own. */
  #start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#reply.hijack();
    this.#reply.raw.writeHead(200, {
      ...(this.#reply.getHeaders() as Record<string, string>),
      'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no',
    });
  }

  /** After a hang-up there is no one to write to; the job's follower sees the hang-up and cancels. */
  #write(chunk: Buffer): void {
    if (!this.#reply.raw.writableEnded && !this.#reply.raw.destroyed) this.#reply.raw.write(chunk);
  }
}

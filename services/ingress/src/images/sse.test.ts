import { describe, expect, it } from 'vitest';
import Fastify from 'fastify';
import { GatewayError, type ImageJobResult, type ImageSubmitReply } from '@homelab/bus';
import { ImageEventWriter } from './sse.ts';

const job: ImageSubmitReply = {
  id: 'imgjob_1', state: 'queued', model: 'sdxl', backend: 'comfyui', routeReason: 'model', stream: true, partialImages: 1,
  responseFormat: 'b64_json', outputFormat: 'webp', size: '1024x1024', created: 1_700_000_000, submittedAt: '2026-01-01T00:00:00Z',
};
const result: ImageJobResult = {
  id: 'imgjob_1', created: 1_700_000_100, model: 'sdxl', backend: 'comfyui',
  data: [{ file_id: 'img_a', content_type: 'image/webp', bytes: 3, width: 64, height: 32 }, { file_id: 'img_b', content_type: 'image/webp', bytes: 3 }],
  usage: { input_tokens: 7, output_tokens: 100, total_tokens: 107 },
};

/** A route that writes with the writer, as the images routes do once the job is submitted. */
async function stream(operation: 'generation' | 'edit', write: (sse: ImageEventWriter) => void): Promise<{ headers: Record<string, unknown>; body: string }> {
  const app = Fastify();
  app.get('/', (_request, reply) => {
    reply.header('x-homelab-job-id', job.id);
    write(new ImageEventWriter(reply, operation, job));
  });
  const res = await app.inject({ method: 'GET', url: '/' });
  await app.close();
  expect(res.statusCode).toBe(200);
  return { headers: res.headers, body: res.body };
}

/** The events of an SSE body: comments (keepalives) as `:`, events as their type and parsed data. */
function events(body: string): ({ comment: string } | { event: string; data: Record<string, unknown> })[] {
  expect(body.endsWith('\n\n')).toBe(true);
  return body.slice(0, -2).split('\n\n').map((block) => {
    if (block.startsWith(':')) return { comment: block };
    const [event, data, ...rest] = block.split('\n');
    expect(rest).toEqual([]);
    expect(event).toMatch(/^event: /);
    expect(data).toMatch(/^data: /);
    return { event: event!.slice(7), data: JSON.parse(data!.slice(6)) as Record<string, unknown> };
  });
}

describe('OpenAI\'s image stream events', () => {
  it('keepalives, a partial image, then one completed event per image with usage, and the end', async () => {
    const { headers, body } = await stream('generation', (sse) => {
      sse.keepalive();
      sse.partial({ index: 0, b64_json: 'UEFSVA', output_format: 'webp', width: 64, height: 32 });
      sse.keepalive();
      sse.completed([{ b64: 'QUFB', ref: result.data[0]! }, { b64: 'QkJC', ref: result.data[1]! }], result);
    });
    expect(headers).toMatchObject({
      'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no', 'x-homelab-job-id': 'imgjob_1',
    });
    expect(body.startsWith(': keepalive\n\nevent: image_generation.partial_image\ndata: {"type":"image_generation.partial_image","b64_json":"UEFSVA",')).toBe(true);
    const usage = { input_tokens: 7, input_tokens_details: { image_tokens: 0, text_tokens: 7 }, output_tokens: 100, total_tokens: 107 };
    expect(events(body)).toEqual([
      { comment: ': keepalive' },
      { event: 'image_generation.partial_image', data: {
        type: 'image_generation.partial_image', b64_json: 'UEFSVA', created_at: expect.any(Number) as number, partial_image_index: 0,
        size: '64x32', quality: 'auto', background: 'auto', output_format: 'webp',
      } },
      { comment: ': keepalive' },
      { event: 'image_generation.completed', data: {
        type: 'image_generation.completed', b64_json: 'QUFB', created_at: 1_700_000_100, size: '64x32', quality: 'auto', background: 'auto', output_format: 'webp', usage,
      } },
      { event: 'image_generation.completed', data: {
        type: 'image_generation.completed', b64_json: 'QkJC', created_at: 1_700_000_100, size: '1024x1024', quality: 'auto', background: 'auto', output_format: 'webp', usage,
      } },
    ]);
  });

  it('an edit\'s events are image_edit.*; an error is an `error` event in OpenAI\'s error shape, and the end', async () => {
    const { body } = await stream('edit', (sse) => {
      sse.partial({ index: 1, b64_json: 'UA', output_format: 'png' });
      sse.error(new GatewayError('timeout', 'the image job did not finish'));
    });
    const [partial, error] = events(body);
    expect(partial).toMatchObject({ event: 'image_edit.partial_image', data: { partial_image_index: 1, size: '1024x1024', output_format: 'png' } });
    expect(error).toEqual({ event: 'error', data: { type: 'error', ...new GatewayError('timeout', 'the image job did not finish').toOpenAI() } });
  });

  it('writes nothing after the end', async () => {
    const { body } = await stream('generation', (sse) => {
      sse.error(new GatewayError('cancelled', 'gone'));
      sse.keepalive();
    });
    expect(events(body)).toHaveLength(1);
  });
});

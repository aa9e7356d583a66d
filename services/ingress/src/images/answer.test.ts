import { describe, expect, it } from 'vitest';
import { GatewayError, verifyFileUrl, type ImageJobResult, type ImageSubmitReply } from '@homelab/bus';
import { buildImagesAnswer, openAIImageUsage, type ImageFileReader } from './answer.ts';

/** The object store's files in memory; counts its reads, so a test sees when the store is not needed. */
class MemoryFiles implements ImageFileReader {
  readonly files = new Map<string, { data: Uint8Array; metadata: Record<string, string> }>();
  reads = 0;

  add(id: string, data: Uint8Array, token = `token-of-${id}`): this {
    this.files.set(id, { data, metadata: { token, contentType: 'image/png' } });
    return this;
  }

  get(id: string): Promise<{ data: Uint8Array } | undefined> {
    this.reads++;
    return Promise.resolve(this.files.get(id));
  }

  info(id: string): Promise<{ metadata: Record<string, string> } | undefined> {
    this.reads++;
    return Promise.resolve(this.files.get(id));
  }
}

const job = (extra: Partial<ImageSubmitReply> = {}): ImageSubmitReply => ({
  id: 'imgjob_1', state: 'queued', model: 'sdxl', backend: 'comfyui', routeReason: 'model', stream: false, partialImages: 0,
  responseFormat: 'b64_json', outputFormat: 'png', created: 1_700_000_000, submittedAt: '2026-01-01T00:00:00Z', ...extra,
});
const result = (data: ImageJobResult['data'], extra: Partial<ImageJobResult> = {}): ImageJobResult => ({
  id: 'imgjob_1', created: 1_700_000_100, model: 'sdxl', backend: 'comfyui', data, ...extra,
});
const ref = (id: string, extra: Partial<ImageJobResult['data'][number]> = {}): ImageJobResult['data'][number] => ({
  file_id: id, content_type: 'image/png', bytes: 3, ...extra,
});
const options = { baseUrl: 'http://gateway.lan:8080', urlTtlSeconds: 600, stream: false };
const NOW = Date.UTC(2026, 0, 1);

describe('OpenAI\'s images answer from a job\'s result', () => {
  it('b64_json: reads each image from the object store, unless the result carries it', async () => {
    const files = new MemoryFiles().add('img_aaaaaaaaaaaaaaaaaaaa', Uint8Array.of(1, 2, 3));
    const answer = await buildImagesAnswer(files, job({ size: '64x64' }), result([
      ref('img_aaaaaaaaaaaaaaaaaaaa', { width: 128, height: 64, revised_prompt: 'a lighthouse at dusk' }),
      ref('img_bbbbbbbbbbbbbbbbbbbb', { b64_json: 'BAUG' }),
    ], { usage: { input_tokens: 10, output_tokens: 20, total_tokens: 30 } }), options);
    expect(files.reads).toBe(1);
    expect(answer.body).toEqual({
      created: 1_700_000_100,
      data: [{ b64_json: 'AQID', revised_prompt: 'a lighthouse at dusk' }, { b64_json: 'BAUG' }],
      output_format: 'png', size: '128x64',
      usage: { input_tokens: 10, input_tokens_details: { image_tokens: 0, text_tokens: 10 }, output_tokens: 20, total_tokens: 30 },
    });
    expect(JSON.stringify(answer.body)).toMatch(/^\{"created":\d+,"data":\[.*\],"output_format":"png","size":"128x64","usage":/);
    expect(answer.images.map((i) => [i.b64, i.ref.file_id])).toEqual([['AQID', 'img_aaaaaaaaaaaaaaaaaaaa'], ['BAUG', 'img_bbbbbbbbbbbbbbbbbbbb']]);
  });

  it('url: a URL on the gateway, signed with the file\'s own token until urlTtlSeconds from now', async () => {
    const id = 'img_cccccccccccccccccccc';
    const files = new MemoryFiles().add(id, Uint8Array.of(9));
    const answer = await buildImagesAnswer(files, job({ responseFormat: 'url' }), result([ref(id)]), { ...options, now: NOW });
    const url = new URL(answer.body.data[0]!.url!);
    expect(`${url.origin}${url.pathname}`).toBe(`http://gateway.lan:8080/v1/images/files/${id}`);
    const expires = Number(url.searchParams.get('expires'));
    expect(expires).toBe(NOW / 1000 + 600);
    expect(verifyFileUrl(id, `token-of-${id}`, expires, url.searchParams.get('sig')!, NOW)).toBe(true);
    expect(verifyFileUrl(id, 'another-token', expires, url.searchParams.get('sig')!, NOW)).toBe(false);
    expect(answer.body.data[0]).not.toHaveProperty('b64_json');
    expect(answer.images).toEqual([]);
  });

  it('a stream always carries the images themselves, even when urls were asked for', async () => {
    const files = new MemoryFiles().add('img_dddddddddddddddddddd', Uint8Array.of(1, 2, 3));
    const answer = await buildImagesAnswer(files, job({ responseFormat: 'url' }), result([ref('img_dddddddddddddddddddd')]), { ...options, stream: true });
    expect(answer.body.data).toEqual([{ b64_json: 'AQID' }]);
    expect(answer.images).toHaveLength(1);
  });

  it('the size: of the images, else the one asked for, else none; no usage when the job reported none', async () => {
    const files = new MemoryFiles().add('img_eeeeeeeeeeeeeeeeeeee', Uint8Array.of(1));
    const asked = await buildImagesAnswer(files, job({ size: '1024x768' }), result([ref('img_eeeeeeeeeeeeeeeeeeee')]), options);
    expect(asked.body.size).toBe('1024x768');
    expect(asked.body).not.toHaveProperty('usage');
    const none = await buildImagesAnswer(files, job(), result([ref('img_eeeeeeeeeeeeeeeeeeee')]), options);
    expect(none.body).not.toHaveProperty('size');
  });

  it('an image missing from the object store (expired, deleted) is an internal error naming it and its job', async () => {
    for (const responseFormat of ['b64_json', 'url'] as const) {
      const err = await buildImagesAnswer(new MemoryFiles(), job({ responseFormat }), result([ref('img_ffffffffffffffffffff')]), options).catch((e: unknown) => e);
      expect(err, responseFormat).toBeInstanceOf(GatewayError);
      expect((err as GatewayError).code).toBe('internal_error');
      expect((err as GatewayError).message).toBe('the image img_ffffffffffffffffffff of job imgjob_1 is missing from the object store');
    }
  });

  it('usage in OpenAI\'s shape, zeros when the job reported none', () => {
    expect(openAIImageUsage(undefined)).toEqual({ input_tokens: 0, input_tokens_details: { image_tokens: 0, text_tokens: 0 }, output_tokens: 0, total_tokens: 0 });
  });
});

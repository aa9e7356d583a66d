import { describe, expect, it } from 'vitest';
import { anthropicModel, anthropicModelList, countTokensAnswer, estimateInputTokens, estimateTextTokens, imageSize, readCountTokensAnswer } from './count-tokens.ts';
import type { CountTokensRequestPayload } from './schema.ts';

const PNG_1x1 = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=';

function png(width: number, height: number): string {
  const bytes = Buffer.from(PNG_1x1, 'base64');
  bytes.writeUInt32BE(width, 16);
  bytes.writeUInt32BE(height, 20);
  return bytes.toString('base64');
}
function gif(width: number, height: number): string {
  const bytes = Buffer.alloc(13);
  bytes.write('GIF89a', 0, 'latin1');
  bytes.writeUInt16LE(width, 6);
  bytes.writeUInt16LE(height, 8);
  return bytes.toString('base64');
}
/** A JPEG's start: SOI, an APP0 segment, then the baseline frame header with height and width. */
function jpeg(width: number, height: number): string {
  const app0 = Buffer.from([0xff, 0xe0, 0x00, 0x10, ...Buffer.from('JFIF\0'), 1, 1, 0, 0, 1, 0, 1, 0, 0]);
  const sof = Buffer.from([0xff, 0xc0, 0x00, 0x11, 0x08, height >> 8, height & 0xff, width >> 8, width & 0xff, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
  return Buffer.concat([Buffer.from([0xff, 0xd8]), app0, sof]).toString('base64');
}

/** A prompt as it comes off the wire (block fields the schema's types do not name included). */
function prompt(body: Record<string, unknown>): CountTokensRequestPayload {
  return { model: 'm', messages: [{ role: 'user', content: 'Hello, Claude' }], ...body } as CountTokensRequestPayload;
}

describe('estimateInputTokens', () => {
  it('counts ASCII at 4 characters a token and other characters one each', () => {
    expect(estimateTextTokens('')).toBe(0);
    expect(estimateTextTokens('Hello, Claude')).toBe(4);
    expect(estimateTextTokens('日本語のテキスト')).toBe(8);
    expect(estimateTextTokens('naïve café')).toBe(Math.ceil(8 / 4) + 2);
  });

  it('adds turns, system, tools and their instructions', () => {
    expect(estimateInputTokens(prompt({}))).toBe(4 + 4);
    expect(estimateInputTokens(prompt({ system: 'Be brief.' }))).toBe(8 + 4 + 3);
    expect(estimateInputTokens(prompt({ system: [{ type: 'text', text: 'Be brief.', cache_control: { type: 'ephemeral' } }] }))).toBe(8 + 4 + 3);
    const tool = { name: 'get_weather', description: 'Get the weather', input_schema: { type: 'object' as const, properties: { location: { type: 'string' } } } };
    expect(estimateInputTokens(prompt({ tools: [tool] }))).toBe(8 + 100 + estimateTextTokens(JSON.stringify(tool)));
    // cache_control is no part of what the model reads.
    expect(estimateInputTokens(prompt({ tools: [{ ...tool, cache_control: { type: 'ephemeral' } }] }))).toBe(estimateInputTokens(prompt({ tools: [tool] })));
  });

  it('counts tool calls, tool results and documents; earlier thinking counts nothing', () => {
    const messages = [
      { role: 'user', content: 'Weather?' },
      { role: 'assistant', content: [{ type: 'thinking', thinking: 'a very long thought '.repeat(50), signature: 's' }, { type: 'tool_use', id: 't', name: 'get_weather', input: { location: 'Paris' } }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't', content: [{ type: 'text', text: '15 degrees' }] }, { type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'The grass is green.' }, title: 'Facts' }] },
    ];
    const expected = 3 * 4 + estimateTextTokens('Weather?') + estimateTextTokens('get_weather') + estimateTextTokens('{"location":"Paris"}')
      + estimateTextTokens('15 degrees') + estimateTextTokens('Facts') + estimateTextTokens('The grass is green.');
    expect(estimateInputTokens(prompt({ messages }))).toBe(expected);
  });

  it('prices images by Anthropic\'s formula on their own size, at most 1600, and PDFs by their pages', () => {
    const image = (data: string): number => estimateInputTokens(prompt({ messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'base64', media_type: 'image/png', data } }] }] })) - 4;
    expect(image(png(200, 150))).toBe(40);
    expect(image(png(4000, 3000))).toBe(1600);
    expect(image(gif(750, 1))).toBe(1);
    expect(image(jpeg(1092, 1092))).toBe(1590);
    expect(image('bm90IGFuIGltYWdl')).toBe(1600);
    const url = estimateInputTokens(prompt({ messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'url', url: 'https://x/a.png' } }] }] }));
    expect(url).toBe(4 + 1600);
    const pdf = Buffer.from('%PDF-1.4\n1 0 obj << /Type /Pages /Count 2 >>\n2 0 obj << /Type /Page >>\n3 0 obj << /Type/Page >>').toString('base64');
    const doc = estimateInputTokens(prompt({ messages: [{ role: 'user', content: [{ type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: pdf } }] }] }));
    expect(doc).toBe(4 + 2 * 2000);
  });

  it('reads image sizes from PNG, GIF and JPEG headers', () => {
    expect(imageSize(png(640, 480))).toEqual({ width: 640, height: 480 });
    expect(imageSize(gif(17, 9))).toEqual({ width: 17, height: 9 });
    expect(imageSize(jpeg(1920, 1080))).toEqual({ width: 1920, height: 1080 });
    expect(imageSize('')).toBeUndefined();
  });
});

describe('count_tokens answers', () => {
  it('writes and reads {input_tokens}', () => {
    expect(countTokensAnswer(42)).toBe('{"input_tokens":42}');
    expect(readCountTokensAnswer(Buffer.from('{"input_tokens": 2095}'))).toEqual({ inputTokens: 2095 });
    expect(readCountTokensAnswer(Buffer.from('{"other": 1}'))).toEqual({});
  });
});

describe('anthropicModelList', () => {
  const models = ['a', 'b', 'c', 'd', 'e'].map((id, i) => ({ id, created: 1_700_000_000 + i, ...(id === 'a' && { display_name: 'Model A' }) }));

  it('gives Anthropic\'s model objects', () => {
    expect(anthropicModel(models[0]!)).toEqual({ type: 'model', id: 'a', display_name: 'Model A', created_at: '2023-11-14T22:13:20Z' });
    expect(anthropicModel({ id: 'x' })).toEqual({ type: 'model', id: 'x', display_name: 'x', created_at: '1970-01-01T00:00:00Z' });
  });

  it('pages with limit, after_id and before_id', () => {
    const ids = (page: ReturnType<typeof anthropicModelList>): unknown => [page.data.map((m) => m.id), page.has_more, page.first_id, page.last_id];
    expect(ids(anthropicModelList(models))).toEqual([['a', 'b', 'c', 'd', 'e'], false, 'a', 'e']);
    expect(ids(anthropicModelList(models, { limit: 2 }))).toEqual([['a', 'b'], true, 'a', 'b']);
    expect(ids(anthropicModelList(models, { limit: 2, afterId: 'b' }))).toEqual([['c', 'd'], true, 'c', 'd']);
    expect(ids(anthropicModelList(models, { limit: 2, afterId: 'd' }))).toEqual([['e'], false, 'e', 'e']);
    expect(ids(anthropicModelList(models, { limit: 2, beforeId: 'e' }))).toEqual([['c', 'd'], true, 'c', 'd']);
    expect(ids(anthropicModelList(models, { limit: 2, beforeId: 'c' }))).toEqual([['a', 'b'], false, 'a', 'b']);
    expect(ids(anthropicModelList(models, { afterId: 'nope' }))).toEqual([[], false, null, null]);
    expect(ids(anthropicModelList([]))).toEqual([[], false, null, null]);
  });
});

import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayError, type NatsConnection } from '@homelab/bus';
import { OMITTED_PART_TEXT, decodeStoredResponse, type StoredResponse } from '@homelab/dialects';
import { createLogger } from '@homelab/logging';
import { connectAs, startNatsServer, type TestNatsServer } from '@homelab/testing';
import { ResponsesTurn, openResponsesStore, type ResponsesStore } from './responses.ts';

// A real nats-server with the project's nats.conf: the worker's identity must be able to keep and read records.
const lines: Record<string, unknown>[] = [];
const log = createLogger({ service: 'test', destination: new Writable({ write: (chunk: Buffer, _e, cb) => { lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>); cb(); } }) });
let nats: TestNatsServer;
let nc: NatsConnection & AsyncDisposable;
let store: ResponsesStore;
beforeAll(async () => {
  nats = await startNatsServer();
  nc = await connectAs(nats, 'worker-vllm');
  store = await openResponsesStore(nc, { nats: { url: nats.url, replicas: 1 }, responses: { ttlDays: 1 } }, log);
});
afterAll(async () => { await nc?.close(); await nats?.[Symbol.asyncDispose](); });

const bytes = (value: unknown): Uint8Array => Buffer.from(JSON.stringify(value));
let counter = 0;
/** A Response as a backend or a translation made it: a reasoning item, then a message. */
function response(text: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  counter++;
  return {
    id: `resp_test${counter}`, object: 'response', status: 'completed', ...extra,
    output: [
      { id: `rs_${counter}`, type: 'reasoning', summary: [], content: [{ type: 'reasoning_text', text: 'thinking' }] },
      { id: `msg_${counter}`, type: 'message', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text, annotations: [] }] },
    ],
  };
}
async function stored(id: string): Promise<StoredResponse | undefined> {
  const entry = await store.bucket.get(id);
  return entry && entry.operation === 'PUT' ? decodeStoredResponse(entry.value) : undefined;
}
/** A first turn kept by `owner` at `provider`. */
async function firstTurn(owner: string, provider: string): Promise<string> {
  const turn = await ResponsesTurn.open(bytes({ model: 'm', input: 'Hi' }), store, owner, provider);
  const answer = response('Hello!');
  await turn.keep(answer);
  return answer['id'] as string;
}

describe('keeping a Response', () => {
  it('stores the Response with its input (ids added), owner, provider and expiry; once', async () => {
    const turn = await ResponsesTurn.open(bytes({ model: 'm', input: [{ role: 'user', content: 'Hi' }], instructions: 'Be brief.' }), store, 'alice', 'vllm');
    expect(turn.stores).toBe(true);
    expect(turn.responseId).toMatch(/^resp_[0-9a-f]{48}$/);
    const answer = response('Hello!');
    const before = Date.now();
    await turn.keep(answer);
    const record = (await stored(answer['id'] as string))!;
    expect(record).toMatchObject({ response: answer, owner: 'alice', provider: 'vllm' });
    expect(record.input).toEqual([{ id: expect.stringMatching(/^msg_/) as unknown, type: 'message', status: 'completed', role: 'user', content: [{ type: 'input_text', text: 'Hi' }] }]);
    expect(record.expiresAt - record.createdAt).toBe(86_400_000);
    expect(record.createdAt).toBeGreaterThanOrEqual(before);
    // A second keep, or another answer claiming the same id, never replaces the record.
    await turn.keep(response('again'));
    const other = await ResponsesTurn.open(bytes({ model: 'm', input: 'Other' }), store, 'mallory', 'vllm');
    await other.keep({ ...response('Mine now'), id: answer['id'] });
    expect((await stored(answer['id'] as string))!.owner).toBe('alice');
    expect(lines.some((l) => l['msg'] === 'could not store a Response' && l['responseId'] === answer['id'])).toBe(true);
  });

  it('store: false keeps nothing; an answer without a usable id is not stored', async () => {
    const unkept = await ResponsesTurn.open(bytes({ model: 'm', input: 'Hi', store: false }), store, 'alice', 'vllm');
    expect(unkept.stores).toBe(false);
    const answer = response('x');
    await unkept.keep(answer);
    expect(await stored(answer['id'] as string)).toBeUndefined();
    const odd = await ResponsesTurn.open(bytes({ model: 'm', input: 'Hi' }), store, 'alice', 'vllm');
    await odd.keep({ ...response('x'), id: 'resp_a.b>' });
    expect(lines.some((l) => l['msg'] === 'a Response without a usable id: not stored')).toBe(true);
  });

  it('a record over the bus limit leaves out its oldest images\' bytes; one too large even so is not stored', async () => {
    const small: ResponsesStore = { ...store, maxRecordBytes: 4000 };
    const image = (n: number) => `data:image/png;base64,${String(n).repeat(2000)}`;
    const first = await ResponsesTurn.open(bytes({ model: 'm', input: [{ role: 'user', content: [{ type: 'input_image', image_url: image(1) }] }] }), small, 'alice', 'vllm');
    const one = response('one');
    await first.keep(one);
    const second = await ResponsesTurn.open(bytes({ model: 'm', previous_response_id: one['id'], input: [{ role: 'user', content: [{ type: 'input_image', image_url: image(2) }, { type: 'input_text', text: 'and this?' }] }] }), small, 'alice', 'vllm');
    const two = response('two');
    await second.keep(two);
    const record = (await stored(two['id'] as string))!;
    const parts = (record.input as Record<string, unknown>[]).filter((item) => item['role'] === 'user').map((item) => item['content']);
    expect(parts).toEqual([[{ type: 'input_text', text: OMITTED_PART_TEXT }], [{ type: 'input_image', image_url: image(2) }, { type: 'input_text', text: 'and this?' }]]);
    const huge = await ResponsesTurn.open(bytes({ model: 'm', input: 'x'.repeat(7000) }), small, 'alice', 'vllm');
    const three = response('three');
    await huge.keep(three);
    expect(await stored(three['id'] as string)).toBeUndefined();
    expect(lines.some((l) => l['msg'] === 'a Response too large to store even without its images: not stored' && l['responseId'] === three['id'])).toBe(true);
  });
});

describe('continuing with previous_response_id', () => {
  it("another key's response, a missing one and a malformed id are OpenAI's 400 on previous_response_id", async () => {
    const mine = await firstTurn('alice', 'vllm');
    for (const [id, owner] of [[mine, 'bob'], ['resp_missing', 'alice'], ['resp_a.b', 'alice'], [mine, '']]) {
      const error = await ResponsesTurn.open(bytes({ model: 'm', previous_response_id: id, input: 'x' }), store, owner!, 'vllm').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(GatewayError);
      expect(error).toMatchObject({ code: 'invalid_request', status: 400, param: 'previous_response_id', message: `Previous response with id '${id}' not found.` });
    }
  });

  it('to OpenAI after OpenAI: the client\'s bytes as they are (OpenAI keeps the conversation too)', async () => {
    const previous = await firstTurn('alice', 'openai');
    const body = Buffer.from(`{ "model":"gpt", "previous_response_id": "${previous}",\n  "input":"And?", "x_future": [1] }`);
    const turn = await ResponsesTurn.open(body, store, 'alice', 'openai');
    expect(Buffer.from(turn.passThroughBytes()).equals(body)).toBe(true);
  });

  it('to OpenAI after another backend: the conversation expanded, without that backend\'s reasoning; every other byte as sent', async () => {
    const previous = await firstTurn('alice', 'vllm');
    const body = Buffer.from(`{ "model":"gpt", "previous_response_id": "${previous}",\n  "input":"And?", "x_future": [1] }`);
    const turn = await ResponsesTurn.open(body, store, 'alice', 'openai');
    const sent = Buffer.from(turn.passThroughBytes()).toString();
    expect(sent).toContain('"x_future": [1] }');
    const parsed = JSON.parse(sent) as { previous_response_id?: string; input: Record<string, unknown>[] };
    expect(parsed.previous_response_id).toBeUndefined();
    expect(parsed.input.map((item) => [item['type'], item['role']])).toEqual([['message', 'user'], ['message', 'assistant'], [undefined, 'user']]);
    expect(parsed.input[2]).toEqual({ role: 'user', content: 'And?' });
  });

  it('to a translated backend: the expanded request (reasoning items left for the translation to drop); the new record holds the whole conversation', async () => {
    const previous = await firstTurn('alice', 'openai');
    const client = { model: 'm', previous_response_id: previous, instructions: 'New rules', input: [{ role: 'user', content: 'And?' }] };
    const turn = await ResponsesTurn.open(bytes(client), store, 'alice', 'ollama');
    const request = turn.translationBody(client) as Record<string, unknown>;
    expect(request).not.toHaveProperty('previous_response_id');
    expect(request['instructions']).toBe('New rules');
    expect((request['input'] as Record<string, unknown>[]).map((item) => item['type'] ?? 'message')).toEqual(['message', 'reasoning', 'message', 'message']);
    const answer = response('Fine.');
    await turn.keep(answer);
    const record = (await stored(answer['id'] as string))!;
    expect(record.provider).toBe('ollama');
    expect(record.input.map((item) => item.type)).toEqual(['message', 'reasoning', 'message', 'message']);
  });
});

describe('item references (the Vercel AI SDK sends earlier output items by id when store is on)', () => {
  const ref = (id: string) => ({ type: 'item_reference', id });

  it('each output item kept is indexed: a reference resolves to the item itself for a translated backend, and the new record holds items, not references', async () => {
    await firstTurn('alice', 'vllm');
    const [rs, msg] = [`rs_${counter}`, `msg_${counter}`];
    expect(Buffer.from((await store.bucket.get(`item.${msg}`))!.value).toString()).toBe(`resp_test${counter}`);
    const client = { model: 'm', input: [{ role: 'user', content: 'Hi' }, ref(rs), { id: msg }, { role: 'user', content: 'More?' }] };
    const turn = await ResponsesTurn.open(bytes(client), store, 'alice', 'ollama');
    const input = turn.translationBody(client)['input'] as Record<string, unknown>[];
    expect(input.map((item) => [item['type'], item['id']])).toEqual([[undefined, undefined], ['reasoning', rs], ['message', msg], [undefined, undefined]]);
    expect(input[2]).toMatchObject({ role: 'assistant', content: [{ type: 'output_text', text: 'Hello!' }] });
    const answer = response('Fine.');
    await turn.keep(answer);
    expect((await stored(answer['id'] as string))!.input.map((item) => item.type)).toEqual(['message', 'reasoning', 'message', 'message']);
  });

  it("to OpenAI: references to OpenAI's own items pass as they are; others become their items, without their reasoning", async () => {
    await firstTurn('alice', 'openai');
    const openai = [`rs_${counter}`, `msg_${counter}`];
    await firstTurn('alice', 'vllm');
    const local = [`rs_${counter}`, `msg_${counter}`];
    const own = Buffer.from(`{"model":"gpt", "input":[{"type":"item_reference","id":"${openai[0]}"},{"type":"item_reference","id":"${openai[1]}"},{"role":"user","content":"x"}]}`);
    expect(Buffer.from((await ResponsesTurn.open(own, store, 'alice', 'openai')).passThroughBytes()).equals(own)).toBe(true);
    const mixed = Buffer.from(`{"model":"gpt",  "input":[{"type":"item_reference","id":"${local[0]}"},{"type":"item_reference","id":"${local[1]}"},{"type":"item_reference","id":"${openai[1]}"}], "x_future":1}`);
    const sent = Buffer.from((await ResponsesTurn.open(mixed, store, 'alice', 'openai')).passThroughBytes()).toString();
    expect(sent.startsWith('{"model":"gpt",  "input":')).toBe(true);
    expect(sent.endsWith(', "x_future":1}')).toBe(true);
    expect((JSON.parse(sent) as { input: Record<string, unknown>[] }).input).toEqual([
      expect.objectContaining({ id: local[1], type: 'message', role: 'assistant' }), { type: 'item_reference', id: openai[1] },
    ]);
  });

  it("an unknown item, another key's, or one past its response's deletion: OpenAI's 400 naming the input item", async () => {
    await firstTurn('alice', 'vllm');
    const msg = `msg_${counter}`;
    for (const [id, owner] of [[msg, 'bob'], ['msg_nowhere', 'alice'], ['msg with space', 'alice']]) {
      const error = await ResponsesTurn.open(bytes({ model: 'm', input: [{ role: 'user', content: 'x' }, ref(id!)] }), store, owner!, 'vllm').catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'invalid_request', status: 400, param: 'input[1]', message: `Item with id '${id}' not found.` });
    }
    await store.bucket.delete(`resp_test${counter}`);
    await expect(ResponsesTurn.open(bytes({ model: 'm', input: [ref(msg)] }), store, 'alice', 'vllm')).rejects.toMatchObject({ param: 'input[0]' });
  });
});

describe('the bucket', () => {
  it('is made with file storage and the TTL; a later start with another TTL changes it', async () => {
    expect(await store.bucket.status()).toMatchObject({ ttl: 86_400_000, bucket: 'responses', storage: 'file' });
    const shorter = await openResponsesStore(nc, { nats: { url: nats.url, replicas: 1 }, responses: { ttlDays: 0.5 } }, log);
    expect((await shorter.bucket.status()).ttl).toBe(43_200_000);
    expect(store.maxRecordBytes).toBe(8 * 1024 * 1024 - 64 * 1024);
  });
});

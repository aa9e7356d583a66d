import { GatewayError, validator } from '@homelab/bus';
import { describe, expect, it } from 'vitest';
import type { ChatCompletion } from '../types.ts';
import { responseFromChat } from './client-answer.ts';
import { responsesToChat } from './client-request.ts';
import { ResponsesRequestSchema } from './schema.ts';
import {
  OMITTED_PART_TEXT, decodeStoredResponse, deletedResponse, encodeStoredResponse, expandedInput, expandedRequest, fitStoredResponse, inputItemsPage,
  isResponseId, newStoredResponse, normalizeInput, parseInputItemsQuery, shouldStore, storedResponseFor, type StoredResponse,
} from './store.ts';

const NOW = 1_750_000_000_000;

function answer(text: string, reasoning?: string): ChatCompletion {
  return {
    id: 'c', object: 'chat.completion', created: 1, model: 'm1',
    choices: [{ index: 0, message: { role: 'assistant', content: text, refusal: null, ...(reasoning && { reasoning_content: reasoning }) }, logprobs: null, finish_reason: 'stop' }],
    usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
  } as ChatCompletion;
}

/** A first turn as the gateway would store it: a response to "Hi" with reasoning. */
function firstTurn(owner = 'alice'): StoredResponse {
  const request = { model: 'smart', instructions: 'Be brief.', input: 'Hi' };
  const response = responseFromChat(answer('Hello!', 'Greet back.'), { requestId: 'r1', model: 'm1', requestedModel: 'smart', created: 1, includeUsage: false }, request);
  return newStoredResponse({ response: response as unknown as StoredResponse['response'], input: request.input, owner, provider: 'vllm', now: NOW, ttlSeconds: 3600 });
}

describe('the stored record', () => {
  it('keeps the response, its input with ids, the owner and the expiry; survives the bucket round trip', () => {
    const record = firstTurn();
    expect(record.input).toEqual([{ id: expect.stringMatching(/^msg_[0-9a-f]{48}$/), type: 'message', status: 'completed', role: 'user', content: [{ type: 'input_text', text: 'Hi' }] }]);
    expect(record).toMatchObject({ owner: 'alice', provider: 'vllm', createdAt: NOW, expiresAt: NOW + 3_600_000 });
    expect(decodeStoredResponse(encodeStoredResponse(record))).toEqual(record);
    expect(() => decodeStoredResponse(Buffer.from('{"response":{}}'))).toThrow(GatewayError);
    expect(() => decodeStoredResponse(Buffer.from('not json'))).toThrow('not valid JSON');
  });

  it('is read only by its owner, only until it expires', () => {
    const record = firstTurn();
    const id = record.response.id;
    expect(storedResponseFor(record, id, 'alice', NOW)).toBe(record);
    for (const [owner, now] of [['bob', NOW], ['alice', NOW + 3_600_000]] as const) {
      const error = (() => { try { storedResponseFor(record, id, owner, now); } catch (err) { return err as GatewayError; } return undefined; })();
      expect(error).toMatchObject({ code: 'not_found', status: 404, message: `Response with id '${id}' not found.` });
    }
    expect(() => storedResponseFor(undefined, id, 'alice', NOW)).toThrow('not found');
  });

  it('store defaults to on; ids fit to be keys', () => {
    expect([shouldStore({}), shouldStore({ store: null }), shouldStore({ store: true }), shouldStore({ store: false })]).toEqual([true, true, true, false]);
    expect(isResponseId(firstTurn().response.id)).toBe(true);
    expect(['resp_', 'resp_a.b', 'resp_>', 'msg_1', 'resp_x y'].map(isResponseId)).toEqual([false, false, false, false, false]);
  });
});

describe('continuing with previous_response_id', () => {
  it('the previous input and output come first, then the new input; instructions are not carried over', () => {
    const previous = firstTurn();
    const body = { model: 'smart', instructions: 'Now in French.', previous_response_id: previous.response.id, input: 'And you?' };
    const expanded = expandedRequest(body, previous);
    expect(expanded).not.toHaveProperty('previous_response_id');
    expect(expanded.input.map((item) => [item['type'] ?? 'message', item['role'] ?? null])).toEqual([
      ['message', 'user'], ['reasoning', null], ['message', 'assistant'], ['message', 'user'],
    ]);
    // As the router validates it and the translation sees it: the new instructions only, the earlier turn, the reasoning left out.
    expect(responsesToChat(validator(ResponsesRequestSchema).parse(expanded)).messages).toEqual([
      { role: 'system', content: 'Now in French.' },
      { role: 'user', content: [{ type: 'text', text: 'Hi' }] },
      { role: 'assistant', content: 'Hello!' },
      { role: 'user', content: 'And you?' },
    ]);
  });

  it('drops earlier reasoning for a backend that cannot read it', () => {
    const types = expandedInput(firstTurn(), [{ role: 'user', content: 'x' }], { dropReasoning: true }).map((item) => item['type']);
    expect(types).toEqual(['message', 'message', undefined]);
  });

  it('the next record holds the whole conversation, and input_items lists it newest first', () => {
    const previous = firstTurn();
    const second = responseFromChat(answer('Bien.'), { requestId: 'r2', model: 'm1', requestedModel: 'smart', created: 2, includeUsage: false }, {});
    const record = newStoredResponse({ response: second as unknown as StoredResponse['response'], input: 'And you?', previous, owner: 'alice', provider: 'vllm', now: NOW, ttlSeconds: 60 });
    expect(record.input).toHaveLength(4);
    expect(new Set(record.input.map((item) => item.id)).size).toBe(4);
    const page = inputItemsPage(record, parseInputItemsQuery({}));
    expect(page.data.map((item) => item.type === 'message' ? (item['content'] as { text: string }[])[0]!.text : item.type)).toEqual(['And you?', 'Hello!', 'reasoning', 'Hi']);
    expect(page).toMatchObject({ object: 'list', first_id: page.data[0]!.id, last_id: page.data[3]!.id, has_more: false });
  });
});

describe('input_items pages', () => {
  const record = newStoredResponse({
    response: { id: 'resp_x', object: 'response', output: [] },
    input: [
      { role: 'user', content: 'one' }, { role: 'assistant', content: 'two' },
      { type: 'function_call', call_id: 'c1', name: 'f', arguments: '{}' }, { type: 'function_call_output', call_id: 'c1', output: 'three' },
      { type: 'message', id: 'msg_mine', role: 'user', content: [{ type: 'input_text', text: 'four' }] },
    ],
    owner: 'alice', provider: 'openai', now: NOW, ttlSeconds: 60,
  });

  it('normalizes items as OpenAI lists them', () => {
    expect(record.input[1]).toMatchObject({ type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'two', annotations: [] }] });
    expect(record.input[2]).toMatchObject({ id: expect.stringMatching(/^fc_/), type: 'function_call', status: 'completed' });
    expect(record.input[3]).toMatchObject({ id: expect.stringMatching(/^fco_/), type: 'function_call_output', output: 'three' });
    expect(record.input[4]!.id).toBe('msg_mine');
    expect(normalizeInput(undefined, 'resp_x')).toEqual([]);
  });

  it('limit, order, after and before', () => {
    const ids = record.input.map((item) => item.id);
    const asc = inputItemsPage(record, parseInputItemsQuery({ order: 'asc', limit: '2' }));
    expect(asc).toEqual({ object: 'list', data: record.input.slice(0, 2), first_id: ids[0], last_id: ids[1], has_more: true });
    const next = inputItemsPage(record, parseInputItemsQuery({ order: 'asc', limit: '2', after: ids[1] }));
    expect(next.data.map((item) => item.id)).toEqual([ids[2], ids[3]]);
    const last = inputItemsPage(record, parseInputItemsQuery({ order: 'asc', after: ids[3] }));
    expect(last).toMatchObject({ data: [record.input[4]], has_more: false });
    const before = inputItemsPage(record, parseInputItemsQuery({ before: ids[2] }));
    expect(before.data.map((item) => item.id)).toEqual([ids[4], ids[3]]);
    const empty = inputItemsPage(record, parseInputItemsQuery({ order: 'asc', after: ids[4] }));
    expect(empty).toEqual({ object: 'list', data: [], first_id: null, last_id: null, has_more: false });
  });

  it('bad queries are 400s naming the parameter', () => {
    for (const [query, param] of [[{ limit: '0' }, 'limit'], [{ limit: '101' }, 'limit'], [{ limit: 'ten' }, 'limit'], [{ order: 'up' }, 'order']] as const) {
      expect(() => parseInputItemsQuery(query)).toThrow(expect.objectContaining({ code: 'invalid_request', param }) as Error);
    }
    expect(() => inputItemsPage(record, parseInputItemsQuery({ after: 'msg_nope' }))).toThrow(expect.objectContaining({ param: 'after' }) as Error);
  });

  it('the DELETE answer', () => {
    expect(deletedResponse('resp_x')).toEqual({ id: 'resp_x', object: 'response.deleted', deleted: true });
  });
});

describe('fitStoredResponse: a record under the bus limit', () => {
  const image = (n: number, size: number) => ({ type: 'input_image', image_url: `data:image/png;base64,${String(n).repeat(size)}` });
  const file = (size: number) => ({ type: 'input_file', filename: 'a.pdf', file_data: 'x'.repeat(size) });
  function withImages(): StoredResponse {
    const record = firstTurn();
    return {
      ...record,
      input: [
        { id: 'msg_1', type: 'message', role: 'user', content: [{ type: 'input_text', text: 'old' }, image(1, 1000), file(1000)] },
        { id: 'fco_1', type: 'function_call_output', call_id: 'c', output: [image(2, 1000)] },
        { id: 'msg_2', type: 'message', role: 'user', content: [image(3, 1000), { type: 'input_image', image_url: 'https://example.com/cat.png' }] },
      ],
    };
  }
  const size = (record: StoredResponse) => encodeStoredResponse(record).byteLength;

  it('a record that fits is stored as it is', () => {
    const record = withImages();
    const fitted = fitStoredResponse(record, size(record));
    expect(fitted).toMatchObject({ record, omitted: 0 });
    expect(Buffer.from(fitted!.bytes).equals(Buffer.from(encodeStoredResponse(record)))).toBe(true);
  });

  it('the oldest inline images and files give way first, each to a text part, until it fits; URLs and text stay', () => {
    const record = withImages();
    const fitted = fitStoredResponse(record, size(record) - 1500)!;
    expect(fitted.omitted).toBe(2);
    expect(fitted.bytes.byteLength).toBeLessThanOrEqual(size(record) - 1500);
    const placeholder = { type: 'input_text', text: OMITTED_PART_TEXT };
    expect(fitted.record.input[0]!['content']).toEqual([{ type: 'input_text', text: 'old' }, placeholder, placeholder]);
    expect(fitted.record.input[1]!['output']).toEqual([image(2, 1000)]);
    expect(decodeStoredResponse(fitted.bytes)).toEqual(fitted.record);
    // The caller's record is not changed.
    expect(record.input[0]!['content']).toHaveLength(3);
    expect((record.input[0]!['content'] as unknown[])[1]).toEqual(image(1, 1000));

    const all = fitStoredResponse(record, size(record) - 3000)!;
    expect(all.omitted).toBe(4);
    expect(all.record.input[2]!['content']).toEqual([placeholder, { type: 'input_image', image_url: 'https://example.com/cat.png' }]);
  });

  it('undefined when even without its images and files it is too large', () => {
    const record = withImages();
    expect(fitStoredResponse(record, 1000)).toBeUndefined();
  });
});

import { afterEach, describe, expect, it } from 'vitest';
import { startAnthropicSimulator, type AnthropicSimOptions, type AnthropicSimulator } from './anthropic.ts';
import { simText } from './sim.ts';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- test access into wire JSON

const KEY = 'sk-ant-sim-key';
const VERSION = { 'anthropic-version': '2023-06-01' };
const USER = [{ role: 'user', content: 'Hello, Claude' }];
const WEATHER = { name: 'get_weather', description: 'Get the weather', input_schema: { type: 'object', properties: { location: { type: 'string' }, unit: { type: 'string' } }, required: ['location'] } };

let sim: AnthropicSimulator | undefined;
afterEach(async () => { await sim?.close(); sim = undefined; });

async function start(options: AnthropicSimOptions = {}): Promise<AnthropicSimulator> {
  sim = await startAnthropicSimulator({ models: ['claude-test'], tokens: 5, ...options });
  return sim;
}

function post(body: unknown, headers: Record<string, string> = VERSION, path = '/v1/messages'): Promise<Response> {
  return fetch(`${sim!.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
}

function get(path: string, headers: Record<string, string> = VERSION): Promise<Response> {
  return fetch(`${sim!.url}${path}`, { headers });
}

/** Parses `event: <type>\ndata: <json>\n\n` frames, checking the event name matches the data's type. */
async function events(response: Response): Promise<Json[]> {
  expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const text = await response.text();
  expect(text.endsWith('\n\n')).toBe(true);
  return text.slice(0, -2).split('\n\n').map((frame) => {
    const [eventLine, dataLine, ...rest] = frame.split('\n');
    expect(rest).toEqual([]);
    const data = JSON.parse(dataLine!.slice('data: '.length)) as Json;
    expect(eventLine).toBe(`event: ${data.type}`);
    return data;
  });
}

async function expectError(response: Response, status: number, type: string): Promise<Json> {
  expect(response.status).toBe(status);
  const body = await response.json() as Json;
  expect(body).toEqual({ type: 'error', error: { type, message: expect.any(String) }, request_id: expect.stringMatching(/^req_/) });
  expect(response.headers.get('request-id')).toBe(body.request_id);
  return body;
}

describe('anthropic simulator', () => {
  it('answers a Message', async () => {
    await start({ cacheReadInputTokens: 3 });
    const response = await post({ model: 'claude-test', max_tokens: 100, messages: USER });
    expect(response.status).toBe(200);
    const message = await response.json() as Json;
    expect(message).toEqual({
      id: expect.stringMatching(/^msg_/), type: 'message', role: 'assistant', model: 'claude-test',
      content: [{ type: 'text', text: simText(5) }], stop_reason: 'end_turn', stop_sequence: null,
      usage: { input_tokens: expect.any(Number), output_tokens: 5, cache_creation_input_tokens: 0, cache_read_input_tokens: 3 },
    });
    expect(sim!.requests[0]).toMatchObject({ body: { model: 'claude-test', max_tokens: 100, messages: USER }, completed: true });
  });

  it('streams frames in the real order', async () => {
    await start();
    const all = await events(await post({ model: 'claude-test', max_tokens: 100, messages: USER, stream: true }));
    expect(all.map((e) => e.type)).toEqual([
      'message_start', 'content_block_start', 'ping', ...Array(5).fill('content_block_delta'), 'content_block_stop', 'message_delta', 'message_stop',
    ]);
    expect(all[0]!.message).toMatchObject({ content: [], stop_reason: null, usage: { output_tokens: 1 } });
    expect(all[1]).toEqual({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } });
    expect(all.slice(3, 8).map((e) => e.delta.text).join('')).toBe(simText(5));
    expect(all[9]).toEqual({ type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 5 } });
  });

  it('thinks first, then calls a tool with its input split over several deltas', async () => {
    await start();
    const body = { model: 'claude-test', max_tokens: 2048, thinking: { type: 'enabled', budget_tokens: 1024 }, tools: [WEATHER], messages: USER, stream: true };
    const all = await events(await post(body));
    const starts = all.filter((e) => e.type === 'content_block_start').map((e) => e.content_block.type);
    expect(starts).toEqual(['thinking', 'tool_use']);
    const thinking = all.filter((e) => e.index === 0 && e.type === 'content_block_delta').map((e) => e.delta.type);
    expect(thinking.at(-1)).toBe('signature_delta');
    expect(thinking.slice(0, -1).every((t) => t === 'thinking_delta')).toBe(true);
    const parts = all.filter((e) => e.delta?.type === 'input_json_delta').map((e) => e.delta.partial_json as string);
    expect(parts.length).toBeGreaterThanOrEqual(3);
    expect(JSON.parse(parts.join(''))).toEqual({ location: 'sim-location', unit: 'sim-unit' });
    expect(all.at(-2)!.delta.stop_reason).toBe('tool_use');

    // After the tool result, it answers in text.
    const followUp = [...USER, { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: {} }] }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: 'sunny' }] }];
    const answer = await (await post({ model: 'claude-test', max_tokens: 100, tools: [WEATHER], messages: followUp })).json() as Json;
    expect(answer).toMatchObject({ stop_reason: 'end_turn', content: [{ type: 'text', text: simText(5) }] });
    // A tool result followed by another user turn (Claude Code's reminders): one combined turn, still answered in text.
    const combined = await (await post({ model: 'claude-test', max_tokens: 100, tools: [WEATHER], messages: [...followUp, { role: 'user', content: 'and tomorrow?' }] })).json() as Json;
    expect(combined).toMatchObject({ stop_reason: 'end_turn' });
  });

  it('honours max_tokens and stop_sequences', async () => {
    await start();
    const short = await (await post({ model: 'claude-test', max_tokens: 2, messages: USER })).json() as Json;
    expect(short).toMatchObject({ stop_reason: 'max_tokens', content: [{ text: simText(2) }], usage: { output_tokens: 2 } });
    const stopped = await (await post({ model: 'claude-test', max_tokens: 100, stop_sequences: ['answers'], messages: USER })).json() as Json;
    expect(stopped).toMatchObject({ stop_reason: 'stop_sequence', stop_sequence: 'answers', content: [{ text: 'The lab ' }] });
  });

  it('validates like the real API', async () => {
    await start();
    await expectError(await post({ model: 'claude-test', messages: USER }), 400, 'invalid_request_error');
    const first = await expectError(await post({ model: 'claude-test', max_tokens: 10, messages: [{ role: 'assistant', content: 'hi' }] }), 400, 'invalid_request_error');
    expect(first.error.message).toBe('messages: first message must use the "user" role');
    // Consecutive turns of one role are combined, as Anthropic does now.
    expect((await post({ model: 'claude-test', max_tokens: 10, messages: [...USER, ...USER] })).status).toBe(200);
    const tag = await expectError(await post({ model: 'claude-test', max_tokens: 10, messages: [{ role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'reasoning', text: 'b' }] }] }), 400, 'invalid_request_error');
    expect(tag.error.message).toBe("messages.0.content.1: Input tag 'reasoning' found using 'type' does not match any of the expected tags: 'document', 'image', 'redacted_thinking', 'search_result', 'text', 'thinking', 'tool_result', 'tool_use'");
    await expectError(await post({ model: 'claude-test', max_tokens: 1000, thinking: { type: 'enabled', budget_tokens: 1024 }, messages: USER }), 400, 'invalid_request_error');
    const missing = await expectError(await post({ model: 'claude-nope', max_tokens: 10, messages: USER }), 404, 'not_found_error');
    expect(missing.error.message).toBe('model: claude-nope');
    await expectError(await post({ model: 'claude-test', max_tokens: 10, messages: USER }, {}), 400, 'invalid_request_error');
  });

  it('accepts the key as x-api-key or Bearer, and nothing else', async () => {
    await start({ apiKey: KEY });
    const body = { model: 'claude-test', max_tokens: 10, messages: USER };
    expect((await post(body, { ...VERSION, 'x-api-key': KEY })).status).toBe(200);
    expect((await post(body, { ...VERSION, authorization: `Bearer ${KEY}` })).status).toBe(200);
    await expectError(await post(body, { ...VERSION, 'x-api-key': 'wrong' }), 401, 'authentication_error');
    await expectError(await post(body), 401, 'authentication_error');
  });

  it('injects status faults in Anthropic’s error shape', async () => {
    await start({ faults: { status: 429, retryAfterSeconds: 9, failCount: 1 } });
    const body = { model: 'claude-test', max_tokens: 10, messages: USER };
    const limited = await post(body);
    expect(limited.headers.get('retry-after')).toBe('9');
    await expectError(limited, 429, 'rate_limit_error');
    expect((await post(body)).status).toBe(200);
    sim!.setFaults({ status: 529 });
    await expectError(await post(body), 529, 'overloaded_error');
    sim!.setFaults({ status: 500 });
    await expectError(await post(body), 500, 'api_error');
  });

  it('sends an error event mid-stream', async () => {
    await start({ faults: { errorEventAfterChunks: 2 } });
    const all = await events(await post({ model: 'claude-test', max_tokens: 100, messages: USER, stream: true }));
    expect(all.filter((e) => e.type === 'content_block_delta')).toHaveLength(2);
    expect(all.at(-1)).toEqual({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } });
  });

  it('keeps each request\'s exact bytes and its anthropic headers', async () => {
    await start();
    const raw = '{ "model" : "claude-test",\n  "max_tokens": 10, "messages": [{"role": "user", "content": "h\\u00e9"}], "thinking": null }';
    const headers = { ...VERSION, 'anthropic-beta': 'interleaved-thinking-2025-05-14,context-1m-2025-08-07' };
    expect((await post(raw, headers)).status).toBe(200);
    const seen = sim!.requests[0]!;
    expect(seen.raw.equals(Buffer.from(raw))).toBe(true);
    expect(seen.headers).toMatchObject({ 'anthropic-version': '2023-06-01', 'anthropic-beta': 'interleaved-thinking-2025-05-14,context-1m-2025-08-07' });
    await get('/v1/models');
    expect(sim!.requests[1]!.raw.length).toBe(0);
  });

  it('signs its thinking block, and refuses thinking with a forced tool choice', async () => {
    await start();
    const thinking = { type: 'enabled', budget_tokens: 1024 };
    const message = await (await post({ model: 'claude-test', max_tokens: 2048, thinking, messages: USER })).json() as Json;
    expect(message.content).toEqual([
      { type: 'thinking', thinking: 'Let me think about this request.', signature: expect.stringMatching(/^[A-Za-z0-9+/]+=*$/) },
      { type: 'text', text: simText(5) },
    ]);
    const forced = await expectError(await post({ model: 'claude-test', max_tokens: 2048, thinking, tools: [WEATHER], tool_choice: { type: 'any' }, messages: USER }), 400, 'invalid_request_error');
    expect(forced.error.message).toBe('Thinking may not be enabled when tool_choice forces tool use.');
  });

  it('writes and reads the prompt cache at cache_control breakpoints', async () => {
    await start();
    const system = [{ type: 'text', text: 'You are a careful assistant. '.repeat(40), cache_control: { type: 'ephemeral' } }];
    const body = { model: 'claude-test', max_tokens: 10, system, messages: USER };
    const first = (await (await post(body)).json() as Json).usage;
    expect(first.cache_creation_input_tokens).toBeGreaterThan(200);
    expect(first.cache_read_input_tokens).toBe(0);
    const second = (await (await post({ ...body, messages: [{ role: 'user', content: 'Another question' }] })).json() as Json).usage;
    expect(second).toMatchObject({ cache_creation_input_tokens: 0, cache_read_input_tokens: first.cache_creation_input_tokens });
    expect(second.input_tokens).toBeGreaterThan(0);
    // The streamed answer says the same in message_start.
    const streamed = await events(await post({ ...body, stream: true }));
    expect(streamed[0]!.message.usage).toMatchObject({ cache_creation_input_tokens: 0, cache_read_input_tokens: first.cache_creation_input_tokens, input_tokens: first.input_tokens });
    // Without cache_control nothing is cached; a top-level cache_control caches the whole prompt.
    const plain = (await (await post({ model: 'claude-test', max_tokens: 10, system: 'x'.repeat(400), messages: USER })).json() as Json).usage;
    expect([plain.cache_creation_input_tokens, plain.cache_read_input_tokens]).toEqual([0, 0]);
    const auto = { model: 'claude-test', max_tokens: 10, cache_control: { type: 'ephemeral' }, system: 'y'.repeat(400), messages: USER };
    const written = (await (await post(auto)).json() as Json).usage;
    expect([written.input_tokens, written.cache_read_input_tokens]).toEqual([0, 0]);
    expect((await (await post(auto)).json() as Json).usage).toMatchObject({ input_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: written.cache_creation_input_tokens });
  });

  it('counts tokens as its answers count the prompt', async () => {
    await start({ apiKey: KEY });
    const auth = { ...VERSION, authorization: `Bearer ${KEY}` };
    const body = { model: 'claude-test', system: 'Be brief.', tools: [WEATHER], messages: USER };
    const counted = await post(body, auth, '/v1/messages/count_tokens');
    expect(counted.status).toBe(200);
    expect(counted.headers.get('request-id')).toMatch(/^req_/);
    const { input_tokens: tokens } = await counted.json() as Json;
    const message = await (await post({ ...body, max_tokens: 10 }, auth)).json() as Json;
    expect(tokens).toBe(message.usage.input_tokens + message.usage.cache_creation_input_tokens + message.usage.cache_read_input_tokens);
    await expectError(await post({ ...body, model: 'claude-nope' }, auth, '/v1/messages/count_tokens'), 404, 'not_found_error');
    await expectError(await post({ model: 'claude-test' }, auth, '/v1/messages/count_tokens'), 400, 'invalid_request_error');
    await expectError(await post(body, VERSION, '/v1/messages/count_tokens'), 401, 'authentication_error');
  });

  it('lists models in Anthropic\'s shape, page by page, and one by id', async () => {
    await start({ models: ['claude-sonnet-4-5', 'claude-haiku-4-5-20251001', 'claude-opus-4-1'], apiKey: KEY });
    const auth = { ...VERSION, 'x-api-key': KEY };
    const all = await (await get('/v1/models', auth)).json() as Json;
    expect(all).toEqual({
      data: [
        { type: 'model', id: 'claude-sonnet-4-5', display_name: 'Claude Sonnet 4.5', created_at: '2025-09-29T00:00:00Z' },
        { type: 'model', id: 'claude-haiku-4-5-20251001', display_name: 'Claude Haiku 4.5', created_at: '2025-09-28T00:00:00Z' },
        { type: 'model', id: 'claude-opus-4-1', display_name: 'Claude Opus 4.1', created_at: '2025-09-27T00:00:00Z' },
      ],
      has_more: false, first_id: 'claude-sonnet-4-5', last_id: 'claude-opus-4-1',
    });
    const page = await (await get('/v1/models?limit=1&after_id=claude-sonnet-4-5', auth)).json() as Json;
    expect(page).toMatchObject({ data: [{ id: 'claude-haiku-4-5-20251001' }], has_more: true, first_id: 'claude-haiku-4-5-20251001' });
    const back = await (await get('/v1/models?limit=5&before_id=claude-opus-4-1', auth)).json() as Json;
    expect(back.data.map((m: Json) => m.id)).toEqual(['claude-sonnet-4-5', 'claude-haiku-4-5-20251001']);
    expect(await (await get('/v1/models/claude-opus-4-1', auth)).json()).toMatchObject({ type: 'model', id: 'claude-opus-4-1' });
    await expectError(await get('/v1/models/gpt-4', auth), 404, 'not_found_error');
    await expectError(await get('/v1/models'), 401, 'authentication_error');
    await expectError(await get('/v1/models', { 'x-api-key': KEY }), 400, 'invalid_request_error');
  });
});

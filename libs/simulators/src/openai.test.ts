import { afterEach, describe, expect, it } from 'vitest';
import { embeddingVector, startOpenAISimulator, type OpenAISimulatorOptions } from './openai.ts';
import { simText, simToken, type Simulator } from './sim.ts';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- test access into wire JSON

const WEATHER_TOOL = {
  type: 'function',
  function: {
    name: 'get_weather',
    parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] }, days: { type: 'integer' } }, required: ['city', 'unit', 'days'] },
  },
};
const USER = [{ role: 'user', content: 'What is the weather in Paris today?' }];

let sim: Simulator | undefined;
afterEach(async () => { await sim?.close(); sim = undefined; });

async function start(options: OpenAISimulatorOptions = {}): Promise<Simulator> {
  sim = await startOpenAISimulator({ models: ['m1'], tokens: 5, ...options });
  return sim;
}

function post(path: string, body: unknown, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<Response> {
  return fetch(sim!.url + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body), signal: signal ?? null });
}

/** The raw SSE text split into events; asserts the framing (`data: …` then a blank line). */
function sseEvents(text: string): string[] {
  expect(text.endsWith('\n\n')).toBe(true);
  return text.slice(0, -2).split('\n\n').map((event) => {
    expect(event.startsWith('data: ')).toBe(true);
    return event.slice('data: '.length);
  });
}

async function streamChunks(body: Json, options?: OpenAISimulatorOptions): Promise<{ chunks: Json[]; events: string[]; response: Response }> {
  if (!sim) await start(options);
  const response = await post('/v1/chat/completions', { model: 'm1', stream: true, ...body });
  expect(response.status).toBe(200);
  const events = sseEvents(await response.text());
  expect(events.at(-1)).toBe('[DONE]');
  return { chunks: events.slice(0, -1).map((e) => JSON.parse(e) as Json), events, response };
}

describe('OpenAI simulator: chat streaming', () => {
  it('vllm flavor: role chunk, one chunk per token, finish chunk, usage chunk, [DONE]', async () => {
    const { chunks, response } = await streamChunks({ messages: USER, stream_options: { include_usage: true } }, { flavor: 'vllm' });
    expect(response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(chunks).toHaveLength(1 + 5 + 1 + 1);
    const id = chunks[0]!.id as string;
    expect(id).toMatch(/^chatcmpl-[0-9a-f]{32}$/);
    for (const c of chunks) {
      expect(c).toMatchObject({ id, object: 'chat.completion.chunk', model: 'm1' });
      expect(typeof c.created).toBe('number');
      expect(c).not.toHaveProperty('system_fingerprint');
    }
    expect(chunks[0]!.choices).toEqual([{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]);
    expect(chunks.slice(1, 6).map((c) => c.choices[0].delta)).toEqual([0, 1, 2, 3, 4].map((i) => ({ content: simToken(i) })));
    expect(chunks[6]!.choices).toEqual([{ index: 0, delta: { content: '' }, logprobs: null, finish_reason: 'stop', stop_reason: null }]);
    // 7 words in the prompt.
    expect(chunks[7]).toMatchObject({ choices: [], usage: { prompt_tokens: 7, completion_tokens: 5, total_tokens: 12 } });
    expect(chunks.slice(0, 7).every((c) => !('usage' in c))).toBe(true);
  });

  it('openai flavor: usage null on every chunk, fingerprint, empty final delta', async () => {
    const { chunks } = await streamChunks({ messages: USER, stream_options: { include_usage: true } }, { flavor: 'openai' });
    expect(chunks[0]!.choices[0].delta).toEqual({ role: 'assistant', content: '', refusal: null });
    expect(chunks.slice(0, -1).every((c) => c.usage === null && c.system_fingerprint === 'fp_sim0001')).toBe(true);
    expect(chunks.at(-2)!.choices).toEqual([{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }]);
    expect(chunks.at(-1)!.usage).toMatchObject({ prompt_tokens: 7, completion_tokens: 5, total_tokens: 12, completion_tokens_details: { reasoning_tokens: 0 } });
  });

  it('sends no usage chunk without stream_options.include_usage', async () => {
    const { chunks } = await streamChunks({ messages: USER });
    expect(chunks).toHaveLength(7);
    expect(chunks.at(-1)!.choices[0].finish_reason).toBe('stop');
    expect(chunks.some((c) => 'usage' in c)).toBe(false);
  });

  it('honours max_tokens and max_completion_tokens with finish_reason length', async () => {
    const a = await streamChunks({ messages: USER, max_tokens: 2, stream_options: { include_usage: true } });
    expect(a.chunks.slice(1, -2).map((c) => c.choices[0].delta.content)).toEqual([simToken(0), simToken(1)]);
    expect(a.chunks.at(-2)!.choices[0].finish_reason).toBe('length');
    expect(a.chunks.at(-1)!.usage.completion_tokens).toBe(2);
    const b = await streamChunks({ messages: USER, max_completion_tokens: 3 });
    expect(b.chunks).toHaveLength(1 + 3 + 1);
    expect(b.chunks.at(-1)!.choices[0].finish_reason).toBe('length');
  });

  it('streams a tool call split over several chunks, OpenAI style', async () => {
    const { chunks } = await streamChunks({ messages: USER, tools: [WEATHER_TOOL] }, { flavor: 'openai' });
    const first = chunks[0]!.choices[0].delta;
    expect(first).toMatchObject({ role: 'assistant', content: null });
    expect(first.tool_calls).toHaveLength(1);
    expect(first.tool_calls[0]).toEqual({ index: 0, id: expect.stringMatching(/^call_\w{24}$/), type: 'function', function: { name: 'get_weather', arguments: '' } });
    const argChunks = chunks.slice(1, -1).map((c) => c.choices[0].delta);
    expect(argChunks.length).toBeGreaterThanOrEqual(3);
    for (const delta of argChunks) {
      expect(Object.keys(delta)).toEqual(['tool_calls']);
      expect(Object.keys(delta.tool_calls[0])).toEqual(['index', 'function']);
      expect(Object.keys(delta.tool_calls[0].function)).toEqual(['arguments']);
    }
    const args = argChunks.map((d) => d.tool_calls[0].function.arguments as string).join('');
    expect(JSON.parse(args)).toEqual({ city: 'sim', unit: 'celsius', days: 1 });
    expect(chunks.at(-1)!.choices[0]).toMatchObject({ delta: {}, finish_reason: 'tool_calls' });
  });

  it('answers with text after a tool result, and never calls a tool with tool_choice none', async () => {
    const messages = [
      ...USER,
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: '21 degrees' },
    ];
    const afterTool = await streamChunks({ messages, tools: [WEATHER_TOOL] });
    expect(afterTool.chunks.slice(1, -1).map((c) => c.choices[0].delta.content).join('')).toBe(simText(5));
    expect(afterTool.chunks.at(-1)!.choices[0].finish_reason).toBe('stop');
    const none = await streamChunks({ messages: USER, tools: [WEATHER_TOOL], tool_choice: 'none' });
    expect(none.chunks.some((c) => c.choices[0]?.delta.tool_calls)).toBe(false);
  });

  it('streams reasoning_content before the answer (vllm --reasoning-parser)', async () => {
    const { chunks } = await streamChunks({ messages: USER }, { flavor: 'vllm', reasoningTokens: 2 });
    expect(chunks.slice(1, 3).map((c) => c.choices[0].delta)).toEqual([{ reasoning_content: simToken(0) }, { reasoning_content: simToken(1) }]);
    expect(chunks[3]!.choices[0].delta).toEqual({ content: simToken(0) });
  });
});

describe('OpenAI simulator: non-streaming chat', () => {
  it('openai flavor: chat.completion field for field', async () => {
    await start({ flavor: 'openai' });
    const res = await post('/v1/chat/completions', { model: 'm1', messages: USER });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    const body = (await res.json()) as Json;
    expect(Object.keys(body)).toEqual(['id', 'object', 'created', 'model', 'choices', 'usage', 'service_tier', 'system_fingerprint']);
    expect(body).toMatchObject({ object: 'chat.completion', model: 'm1', system_fingerprint: 'fp_sim0001' });
    expect(body.choices).toEqual([{ index: 0, message: { role: 'assistant', content: simText(5), refusal: null, annotations: [] }, logprobs: null, finish_reason: 'stop' }]);
    expect(body.usage).toMatchObject({ prompt_tokens: 7, completion_tokens: 5, total_tokens: 12 });
  });

  it('vllm flavor: tool call in the message, content null', async () => {
    await start({ flavor: 'vllm' });
    const body = (await (await post('/v1/chat/completions', { model: 'm1', messages: USER, tools: [WEATHER_TOOL] })).json()) as Json;
    expect(body).toMatchObject({ system_fingerprint: null, usage: { prompt_tokens: 7, total_tokens: expect.any(Number) } });
    const choice = body.choices[0];
    expect(choice.finish_reason).toBe('tool_calls');
    expect(choice.message.content).toBeNull();
    expect(choice.message.tool_calls[0]).toMatchObject({ id: expect.stringMatching(/^call_/), type: 'function', function: { name: 'get_weather' } });
    expect(JSON.parse(choice.message.tool_calls[0].function.arguments)).toEqual({ city: 'sim', unit: 'celsius', days: 1 });
  });

  it('JSON mode: json_object and json_schema give a valid JSON object', async () => {
    await start();
    const object = (await (await post('/v1/chat/completions', { model: 'm1', messages: USER, response_format: { type: 'json_object' } })).json()) as Json;
    expect(JSON.parse(object.choices[0].message.content)).toEqual({ answer: simText(5) });
    const schema = { type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer' }, tags: { type: 'array' } }, required: ['name', 'age', 'tags'] };
    const res = await post('/v1/chat/completions', { model: 'm1', stream: true, messages: USER, response_format: { type: 'json_schema', json_schema: { name: 'person', schema } } });
    const content = sseEvents(await res.text()).slice(0, -1).map((e) => (JSON.parse(e) as Json).choices[0].delta.content ?? '').join('');
    expect(JSON.parse(content)).toEqual({ name: 'sim', age: 1, tags: [] });
  });

  it('records the request body, unknown fields included', async () => {
    await start();
    await post('/v1/chat/completions', { model: 'm1', messages: USER, top_k: 7 });
    expect(sim!.requests[0]).toMatchObject({ method: 'POST', path: '/v1/chat/completions', body: { top_k: 7 }, completed: true, aborted: false });
  });
});

describe('OpenAI simulator: request errors', () => {
  it('unknown model: 404 in each flavor', async () => {
    await start({ flavor: 'openai' });
    const res = await post('/v1/chat/completions', { model: 'nope', messages: USER });
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: { message: 'The model `nope` does not exist or you do not have access to it.', type: 'invalid_request_error', param: null, code: 'model_not_found' } });
    await sim!.close();
    await start({ flavor: 'vllm' });
    const vres = await post('/v1/chat/completions', { model: 'nope', messages: USER });
    expect(vres.status).toBe(404);
    expect(await vres.json()).toEqual({ error: { message: 'The model `nope` does not exist.', type: 'NotFoundError', param: 'model', code: 404 } });
  });

  it('malformed JSON, missing messages, stream_options without stream: 400', async () => {
    await start();
    const bad = await post('/v1/chat/completions', '{"model": "m1", ');
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as Json).error).toMatchObject({ type: 'BadRequestError', code: 400 });
    const missing = await post('/v1/chat/completions', { model: 'm1' });
    expect(missing.status).toBe(400);
    expect(((await missing.json()) as Json).error.message).toContain('messages');
    const opts = await post('/v1/chat/completions', { model: 'm1', messages: USER, stream_options: { include_usage: true } });
    expect(opts.status).toBe(400);
  });

  it('legacy vllm errors use the flat shape', async () => {
    await start({ legacyErrors: true });
    const res = await post('/v1/chat/completions', { model: 'm1' });
    expect(await res.json()).toMatchObject({ object: 'error', type: 'BadRequestError', param: 'messages', code: 400, message: expect.stringContaining('messages') });
  });
});

describe('OpenAI simulator: embeddings, models, vLLM endpoints', () => {
  it('embeddings: floats, base64, arrays, usage', async () => {
    await start({ flavor: 'openai' });
    const res = await post('/v1/embeddings', { model: 'm1', input: ['hello world', 'lab'] });
    const body = (await res.json()) as Json;
    expect(body).toEqual({
      object: 'list', model: 'm1', usage: { prompt_tokens: 3, total_tokens: 3 },
      data: [{ object: 'embedding', index: 0, embedding: embeddingVector('hello world') }, { object: 'embedding', index: 1, embedding: embeddingVector('lab') }],
    });
    expect(embeddingVector('lab')).toHaveLength(8);
    expect(embeddingVector('lab')).not.toEqual(embeddingVector('lab2'));
    const b64 = (await (await post('/v1/embeddings', { model: 'm1', input: 'lab', encoding_format: 'base64' })).json()) as Json;
    const buf = Buffer.from(b64.data[0].embedding as string, 'base64');
    expect(Array.from(new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4))).toEqual(embeddingVector('lab'));
    expect((await post('/v1/embeddings', { model: 'm1' })).status).toBe(400);
  });

  it('models: vllm and openai shapes', async () => {
    await start({ flavor: 'vllm', models: ['a', 'b'] });
    const vllm = (await (await fetch(sim!.url + '/v1/models')).json()) as Json;
    expect(vllm).toEqual({ object: 'list', data: ['a', 'b'].map((id) => ({ id, object: 'model', created: expect.any(Number), owned_by: 'vllm', root: id, parent: null, max_model_len: 32768 })) });
    await sim!.close();
    await start({ flavor: 'openai' });
    const openai = (await (await fetch(sim!.url + '/v1/models')).json()) as Json;
    expect(openai.data).toEqual([{ id: 'm1', object: 'model', created: expect.any(Number), owned_by: 'openai' }]);
  });

  it('health, version, load (requests in flight)', async () => {
    await start({ flavor: 'vllm', tokenIntervalMs: 50 });
    const health = await fetch(sim!.url + '/health');
    expect(health.status).toBe(200);
    expect(await health.text()).toBe('');
    expect(await (await fetch(sim!.url + '/version')).json()).toEqual({ version: '0.11.0' });
    expect(await (await fetch(sim!.url + '/load')).json()).toEqual({ server_load: 0 });
    const streaming = await post('/v1/chat/completions', { model: 'm1', stream: true, messages: USER });
    expect(await (await fetch(sim!.url + '/load')).json()).toEqual({ server_load: 1 });
    await streaming.text();
    await new Promise((r) => setTimeout(r, 20));
    expect(await (await fetch(sim!.url + '/load')).json()).toEqual({ server_load: 0 });
  });
});

describe('OpenAI simulator: auth', () => {
  it('vllm: /v1 needs the key, /health stays open', async () => {
    await start({ flavor: 'vllm', apiKey: 'k-secret' });
    const denied = await post('/v1/chat/completions', { model: 'm1', messages: USER });
    expect(denied.status).toBe(401);
    expect(await denied.json()).toEqual({ error: 'Unauthorized' });
    expect((await fetch(sim!.url + '/health')).status).toBe(200);
    expect((await post('/v1/chat/completions', { model: 'm1', messages: USER }, { authorization: 'Bearer k-secret' })).status).toBe(200);
  });

  it('openai: invalid_api_key with a masked key', async () => {
    await start({ flavor: 'openai', apiKey: 'sk-right-key-000' });
    const res = await post('/v1/chat/completions', { model: 'm1', messages: USER }, { authorization: 'Bearer sk-wrong-key-1234' });
    expect(res.status).toBe(401);
    const body = (await res.json()) as Json;
    expect(body.error).toMatchObject({ type: 'invalid_request_error', param: null, code: 'invalid_api_key' });
    expect(body.error.message).toContain('sk-**********1234');
  });
});

describe('OpenAI simulator: faults', () => {
  it('status faults: 429 with Retry-After, failCount clears itself', async () => {
    await start({ flavor: 'openai', faults: { status: 429, retryAfterSeconds: 3, failCount: 1 } });
    const res = await post('/v1/chat/completions', { model: 'm1', messages: USER });
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('3');
    expect(((await res.json()) as Json).error).toMatchObject({ type: 'requests', code: 'rate_limit_exceeded' });
    expect((await post('/v1/chat/completions', { model: 'm1', messages: USER })).status).toBe(200);
  });

  it('vllm 503 in the v0.10.1+ shape', async () => {
    await start({ faults: { status: 503 } });
    const res = await post('/v1/embeddings', { model: 'm1', input: 'x' });
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ error: { message: 'Service Unavailable', type: 'Service Unavailable', param: null, code: 503 } });
  });

  it('stallBeforeFirstTokenMs delays the first chunk, not the headers', async () => {
    await start({ faults: { stallBeforeFirstTokenMs: 200 } });
    const t0 = Date.now();
    const res = await post('/v1/chat/completions', { model: 'm1', stream: true, messages: USER });
    expect(Date.now() - t0).toBeLessThan(150);
    await res.text();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
  });

  it('malformedAfterChunks writes a line that is not JSON, then continues', async () => {
    await start({ faults: { malformedAfterChunks: 2 } });
    const res = await post('/v1/chat/completions', { model: 'm1', stream: true, messages: USER });
    const events = sseEvents(await res.text());
    // role chunk, 2 content chunks, then the bad line.
    expect(events[3]).toBe('{not json');
    expect(events.at(-1)).toBe('[DONE]');
  });

  it('dropAfterChunks destroys the connection mid-stream', async () => {
    await start({ faults: { dropAfterChunks: 2 } });
    const res = await post('/v1/chat/completions', { model: 'm1', stream: true, messages: USER });
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let received = '';
    await expect((async () => { for (;;) { const { done, value } = await reader.read(); if (done) return; received += value; } })()).rejects.toThrow('terminated');
    // The role chunk and two content chunks arrived before the drop.
    expect(received.split('\n\n').filter(Boolean)).toHaveLength(3);
    expect(received).toContain(`"content":${JSON.stringify(simToken(1))}`);
    expect(sim!.requests[0]!.completed).toBe(false);
  });

  it('stops generating and records aborted when the client goes away', async () => {
    await start({ tokens: 100, tokenIntervalMs: 20 });
    const controller = new AbortController();
    const res = await post('/v1/chat/completions', { model: 'm1', stream: true, messages: USER }, {}, controller.signal);
    const reader = res.body!.getReader();
    await reader.read();
    controller.abort();
    await new Promise((r) => setTimeout(r, 100));
    expect(sim!.requests[0]).toMatchObject({ aborted: true, completed: false });
  });
});

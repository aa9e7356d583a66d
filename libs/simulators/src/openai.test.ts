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

  it('OpenAI refuses vLLM\'s sampling fields; vLLM takes them', async () => {
    await start({ flavor: 'openai' });
    const refused = await post('/v1/chat/completions', { model: 'm1', messages: USER, top_k: 7 });
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as Json).error).toMatchObject({ message: 'Unrecognized request argument supplied: top_k', type: 'invalid_request_error' });
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

describe('OpenAI simulator: n choices in chat', () => {
  it('non-streaming: n choices with their index, usage counts every choice', async () => {
    await start({ flavor: 'vllm' });
    const body = (await (await post('/v1/chat/completions', { model: 'm1', messages: USER, n: 3 })).json()) as Json;
    expect(body.choices.map((c: Json) => c.index)).toEqual([0, 1, 2]);
    expect(body.choices.every((c: Json) => c.message.content === simText(5))).toBe(true);
    expect(body.usage).toMatchObject({ prompt_tokens: 7, completion_tokens: 15, total_tokens: 22 });
    expect((await post('/v1/chat/completions', { model: 'm1', messages: USER, n: 0 })).status).toBe(400);
  });

  it('streaming: each choice opens with its role, tokens interleave, each finishes', async () => {
    const { chunks } = await streamChunks({ messages: USER, n: 2, stream_options: { include_usage: true } }, { flavor: 'openai' });
    const of = (index: number) => chunks.filter((c) => c.choices[0]?.index === index).map((c) => c.choices[0]);
    for (const index of [0, 1]) {
      const choice = of(index);
      expect(choice[0].delta).toEqual({ role: 'assistant', content: '', refusal: null });
      expect(choice.slice(1, -1).map((c: Json) => c.delta.content).join('')).toBe(simText(5));
      expect(choice.at(-1).finish_reason).toBe('stop');
    }
    // Token by token: choice 0's first token, then choice 1's.
    expect(chunks.slice(2, 4).map((c) => c.choices[0].index)).toEqual([0, 1]);
    expect(chunks.at(-1)!.usage).toMatchObject({ completion_tokens: 10 });
  });

  it('tool calls: each choice calls with its own id', async () => {
    await start({ flavor: 'openai' });
    const body = (await (await post('/v1/chat/completions', { model: 'm1', messages: USER, tools: [WEATHER_TOOL], n: 2 })).json()) as Json;
    const ids = body.choices.map((c: Json) => c.message.tool_calls[0].id);
    expect(new Set(ids).size).toBe(2);
  });
});

describe('OpenAI simulator: /v1/completions', () => {
  it('vllm: a text completion field for field, max_tokens default 16', async () => {
    await start({ flavor: 'vllm' });
    const res = await post('/v1/completions', { model: 'm1', prompt: 'Once upon a time' });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Json;
    expect(body).toMatchObject({ id: expect.stringMatching(/^cmpl-/), object: 'text_completion', model: 'm1', system_fingerprint: null, kv_transfer_params: null });
    expect(body.choices).toEqual([{ index: 0, text: simText(5), logprobs: null, finish_reason: 'stop', stop_reason: null, prompt_logprobs: null }]);
    expect(body.usage).toEqual({ prompt_tokens: 4, total_tokens: 9, completion_tokens: 5, prompt_tokens_details: null });
  });

  it('vllm refuses suffix as vLLM does; openai takes it', async () => {
    await start({ flavor: 'vllm' });
    const refused = await post('/v1/completions', { model: 'm1', prompt: 'def add(a, b):', suffix: '\n    return c' });
    expect(refused.status).toBe(400);
    expect(await refused.json()).toEqual({ error: { message: 'suffix is not currently supported', type: 'BadRequestError', param: null, code: 400 } });
    await sim!.close();
    await start({ flavor: 'openai' });
    const taken = await post('/v1/completions', { model: 'm1', prompt: 'def add(a, b):', suffix: '\n    return c' });
    expect(taken.status).toBe(200);
    expect(((await taken.json()) as Json).choices[0]).toEqual({ text: simText(5), index: 0, logprobs: null, finish_reason: 'stop' });
  });

  it('a list of prompts times n choices; echo; max_tokens cuts with length', async () => {
    await start({ flavor: 'openai' });
    const body = (await (await post('/v1/completions', { model: 'm1', prompt: ['A', 'B c'], n: 2, echo: true, max_tokens: 2 })).json()) as Json;
    expect(body.choices.map((c: Json) => [c.index, c.text, c.finish_reason])).toEqual([
      [0, `A${simText(2)}`, 'length'], [1, `A${simText(2)}`, 'length'], [2, `B c${simText(2)}`, 'length'], [3, `B c${simText(2)}`, 'length'],
    ]);
    expect(body.usage).toEqual({ prompt_tokens: 3, completion_tokens: 8, total_tokens: 11 });
  });

  it('logprobs: tokens, offsets, top alternatives; an echoed prompt starts without a log probability', async () => {
    await start({ flavor: 'vllm' });
    const body = (await (await post('/v1/completions', { model: 'm1', prompt: 'Hi there', max_tokens: 2, logprobs: 2, echo: true })).json()) as Json;
    const logprobs = body.choices[0].logprobs;
    expect(logprobs.tokens).toEqual(['Hi', ' there', simToken(0), simToken(1)]);
    expect(logprobs.text_offset).toEqual([0, 2, 8, 8 + simToken(0).length]);
    expect(logprobs.token_logprobs[0]).toBeNull();
    expect(logprobs.top_logprobs[0]).toBeNull();
    // vLLM: the sampled token and the top 2.
    expect(Object.keys(logprobs.top_logprobs[2])).toHaveLength(3);
  });

  it('token prompts are accepted', async () => {
    await start();
    const body = (await (await post('/v1/completions', { model: 'm1', prompt: [[0, 1], [2]] })).json()) as Json;
    expect(body.choices).toHaveLength(2);
    expect(body.usage.prompt_tokens).toBe(3);
  });

  it('vllm streaming: a chunk per token, the last with its finish reason, usage, [DONE]', async () => {
    await start({ flavor: 'vllm' });
    const res = await post('/v1/completions', { model: 'm1', prompt: 'Go', stream: true, stream_options: { include_usage: true }, echo: true });
    const events = sseEvents(await res.text());
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e) as Json);
    expect(chunks).toHaveLength(6);
    expect(chunks[0]).toEqual({ id: expect.stringMatching(/^cmpl-/), object: 'text_completion', created: expect.any(Number), model: 'm1', choices: [{ index: 0, text: `Go${simToken(0)}`, logprobs: null, finish_reason: null, stop_reason: null, prompt_token_ids: null, token_ids: null }] });
    expect(chunks[4]!.choices[0]).toMatchObject({ text: simToken(4), finish_reason: 'stop' });
    expect(chunks[5]).toMatchObject({ choices: [], usage: { prompt_tokens: 1, completion_tokens: 5, total_tokens: 6 } });
  });

  it('openai streaming: an empty last piece carries the finish reason; usage null until the usage chunk', async () => {
    await start({ flavor: 'openai' });
    const res = await post('/v1/completions', { model: 'm1', prompt: 'Go', stream: true, stream_options: { include_usage: true }, max_tokens: 3 });
    const chunks = sseEvents(await res.text()).slice(0, -1).map((e) => JSON.parse(e) as Json);
    expect(chunks.map((c) => c.choices[0]?.text)).toEqual([simToken(0), simToken(1), simToken(2), '', undefined]);
    expect(chunks[3]!.choices[0]).toEqual({ text: '', index: 0, logprobs: null, finish_reason: 'length' });
    expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true);
    expect(chunks[4]!.usage).toEqual({ prompt_tokens: 1, completion_tokens: 3, total_tokens: 4, prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 } });
  });

  it('errors: missing prompt, chat-only models at openai, faults', async () => {
    await start({ flavor: 'openai', chatOnlyModels: ['m1'], models: ['m1', 'instruct'] });
    expect((await post('/v1/completions', { model: 'instruct' })).status).toBe(400);
    const chatOnly = await post('/v1/completions', { model: 'm1', prompt: 'x' });
    expect(chatOnly.status).toBe(404);
    expect(((await chatOnly.json()) as Json).error.message).toContain('This is a chat model');
    sim!.setFaults({ status: 503, failCount: 1 });
    expect((await post('/v1/completions', { model: 'instruct', prompt: 'x' })).status).toBe(503);
  });

  it('records the raw body bytes exactly as sent', async () => {
    await start();
    const raw = '{"model":"m1",  "prompt":"x", "top_k": 3, "z":[1,2]}';
    await post('/v1/completions', raw);
    expect(sim!.requests[0]!.rawBody?.toString('utf8')).toBe(raw);
  });
});

describe('OpenAI simulator: vLLM /tokenize', () => {
  it('a prompt or chat messages: count, max_model_len, tokens; messages count as the chat prompt does', async () => {
    await start({ flavor: 'vllm' });
    const prompt = (await (await post('/tokenize', { model: 'm1', prompt: 'Hello lab world' })).json()) as Json;
    expect(prompt).toEqual({ count: 3, max_model_len: 32768, tokens: expect.any(Array), token_strs: null });
    expect(prompt.tokens.every((t: number) => Number.isInteger(t) && t >= 0 && t < 32000)).toBe(true);
    const chat = (await (await post('/tokenize', { model: 'm1', messages: USER, return_token_strs: true })).json()) as Json;
    const completion = (await (await post('/v1/chat/completions', { model: 'm1', messages: USER })).json()) as Json;
    expect(chat.count).toBe(completion.usage.prompt_tokens);
    expect(chat.token_strs).toHaveLength(7);
    expect((await post('/tokenize', { model: 'nope', prompt: 'x' })).status).toBe(404);
    expect((await post('/tokenize', { model: 'm1' })).status).toBe(400);
  });

  it('openai has no /tokenize', async () => {
    await start({ flavor: 'openai' });
    expect((await post('/tokenize', { model: 'm1', prompt: 'x' })).status).toBe(404);
  });
});

/** The Responses SSE events of a stream: each `event:` line matches its data's type. */
function responsesEvents(text: string): Json[] {
  expect(text.endsWith('\n\n')).toBe(true);
  expect(text).not.toContain('[DONE]');
  return text.slice(0, -2).split('\n\n').map((record) => {
    const [eventLine, dataLine] = record.split('\n');
    const data = JSON.parse(dataLine!.slice('data: '.length)) as Json;
    expect(eventLine).toBe(`event: ${data.type}`);
    return data;
  });
}

const WEATHER_FUNCTION = { type: 'function', name: 'get_weather', parameters: WEATHER_TOOL.function.parameters };

describe('OpenAI simulator: /v1/responses (openai flavor)', () => {
  it('a Response object field for field', async () => {
    await start({ flavor: 'openai' });
    const res = await post('/v1/responses', { model: 'm1', input: 'What is the weather in Paris today?', instructions: 'Be brief.', metadata: { a: 'b' } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Json;
    expect(body).toMatchObject({
      id: expect.stringMatching(/^resp_[0-9a-f]{48}$/), object: 'response', status: 'completed', error: null, incomplete_details: null,
      instructions: 'Be brief.', model: 'm1', store: true, metadata: { a: 'b' }, text: { format: { type: 'text' } }, tool_choice: 'auto', tools: [],
    });
    expect(body.output).toEqual([{ id: expect.stringMatching(/^msg_/), type: 'message', status: 'completed', role: 'assistant', content: [{ type: 'output_text', annotations: [], logprobs: [], text: simText(5) }] }]);
    expect(body.usage).toEqual({ input_tokens: 9, input_tokens_details: { cached_tokens: 0 }, output_tokens: 5, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 14 });
  });

  it('streams the semantic events with sequence numbers, ending with response.completed', async () => {
    await start({ flavor: 'openai' });
    const res = await post('/v1/responses', { model: 'm1', input: 'Hi', stream: true });
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    const events = responsesEvents(await res.text());
    expect(events.map((e) => e.type)).toEqual([
      'response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added',
      ...Array<string>(5).fill('response.output_text.delta'),
      'response.output_text.done', 'response.content_part.done', 'response.output_item.done', 'response.completed',
    ]);
    expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i));
    expect(events[0]!.response).toMatchObject({ status: 'in_progress', output: [] });
    expect(events.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta).join('')).toBe(simText(5));
    expect(events.at(-1)!.response).toMatchObject({ status: 'completed', output: [{ type: 'message', content: [{ text: simText(5) }] }], usage: { output_tokens: 5 } });
  });

  it('calls a function tool, then answers the function output', async () => {
    await start({ flavor: 'openai' });
    const first = (await (await post('/v1/responses', { model: 'm1', input: 'Weather in Paris?', tools: [WEATHER_FUNCTION] })).json()) as Json;
    const call = first.output[0];
    expect(call).toEqual({ id: expect.stringMatching(/^fc_/), type: 'function_call', status: 'completed', arguments: '{"city":"sim","unit":"celsius","days":1}', call_id: expect.stringMatching(/^call_/), name: 'get_weather' });
    const second = (await (await post('/v1/responses', {
      model: 'm1', tools: [WEATHER_FUNCTION],
      input: [{ role: 'user', content: 'Weather in Paris?' }, call, { type: 'function_call_output', call_id: call.call_id, output: '21 degrees' }],
    })).json()) as Json;
    expect(second.output[0]).toMatchObject({ type: 'message', content: [{ text: simText(5) }] });
  });

  it('streams a function call: item added, argument deltas, done', async () => {
    await start({ flavor: 'openai' });
    const events = responsesEvents(await (await post('/v1/responses', { model: 'm1', input: 'Weather?', tools: [WEATHER_FUNCTION], stream: true })).text());
    const types = events.map((e) => e.type);
    expect(types.slice(0, 3)).toEqual(['response.created', 'response.in_progress', 'response.output_item.added']);
    expect(events[2]!.item).toMatchObject({ type: 'function_call', status: 'in_progress', arguments: '', name: 'get_weather' });
    const args = events.filter((e) => e.type === 'response.function_call_arguments.delta').map((e) => e.delta as string).join('');
    expect(events.find((e) => e.type === 'response.function_call_arguments.done')!.arguments).toBe(args);
    expect(types.slice(-2)).toEqual(['response.output_item.done', 'response.completed']);
  });

  it('max_output_tokens: incomplete with its reason; json_schema text format', async () => {
    await start({ flavor: 'openai' });
    const cut = (await (await post('/v1/responses', { model: 'm1', input: 'Hi', max_output_tokens: 2 })).json()) as Json;
    expect(cut).toMatchObject({ status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' }, output: [{ status: 'incomplete', content: [{ text: simText(2) }] }] });
    const schema = { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] };
    const json = (await (await post('/v1/responses', { model: 'm1', input: 'Hi', text: { format: { type: 'json_schema', name: 'p', schema } } })).json()) as Json;
    expect(JSON.parse(json.output[0].content[0].text)).toEqual({ name: 'sim' });
  });

  it('stores responses: previous_response_id continues, GET, input_items, DELETE', async () => {
    await start({ flavor: 'openai' });
    const first = (await (await post('/v1/responses', { model: 'm1', input: 'First question' })).json()) as Json;
    const second = (await (await post('/v1/responses', { model: 'm1', input: 'Second question', previous_response_id: first.id })).json()) as Json;
    expect(second.previous_response_id).toBe(first.id);
    // The context counts the first question, its answer and the second question.
    expect(second.usage.input_tokens).toBe(2 + 5 + 2);
    expect(await (await fetch(`${sim!.url}/v1/responses/${first.id as string}`)).json()).toEqual(first);
    const items = (await (await fetch(`${sim!.url}/v1/responses/${second.id as string}/input_items`)).json()) as Json;
    expect(items).toMatchObject({ object: 'list', has_more: false });
    // Newest first by default.
    expect(items.data.map((i: Json) => i.content[0].text)).toEqual(['Second question', simText(5), 'First question']);
    expect(items.first_id).toBe(items.data[0].id);
    const asc = (await (await fetch(`${sim!.url}/v1/responses/${second.id as string}/input_items?order=asc&limit=1`)).json()) as Json;
    expect(asc).toMatchObject({ data: [{ content: [{ text: 'First question' }] }], has_more: true });
    const deleted = await fetch(`${sim!.url}/v1/responses/${first.id as string}`, { method: 'DELETE' });
    expect(await deleted.json()).toEqual({ id: first.id, object: 'response.deleted', deleted: true });
    const gone = await fetch(`${sim!.url}/v1/responses/${first.id as string}`);
    expect(gone.status).toBe(404);
    expect(await gone.json()).toEqual({ error: { message: `Response with id '${first.id as string}' not found.`, type: 'invalid_request_error', param: null, code: null } });
  });

  it('store false keeps nothing; an unknown previous_response_id is a 400', async () => {
    await start({ flavor: 'openai' });
    const unstored = (await (await post('/v1/responses', { model: 'm1', input: 'x', store: false })).json()) as Json;
    expect(unstored.store).toBe(false);
    expect((await fetch(`${sim!.url}/v1/responses/${unstored.id as string}`)).status).toBe(404);
    const res = await post('/v1/responses', { model: 'm1', input: 'x', previous_response_id: unstored.id });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: { message: `Previous response with id '${unstored.id as string}' not found.`, type: 'invalid_request_error', param: 'previous_response_id', code: 'previous_response_not_found' } });
  });

  it('an unknown input item type is a 400 naming it; vllm has no /v1/responses', async () => {
    await start({ flavor: 'openai' });
    const res = await post('/v1/responses', { model: 'm1', input: [{ role: 'user', content: 'x' }, { type: 'telepathy' }] });
    expect(res.status).toBe(400);
    expect(((await res.json()) as Json).error).toMatchObject({ param: 'input[1].type', code: 'invalid_value', message: expect.stringContaining("Invalid value: 'telepathy'") });
    await sim!.close();
    await start({ flavor: 'vllm' });
    expect((await post('/v1/responses', { model: 'm1', input: 'x' })).status).toBe(404);
  });

  it('reasoning: an encrypted reasoning item before the message, counted in usage', async () => {
    await start({ flavor: 'openai' });
    const body = (await (await post('/v1/responses', { model: 'm1', input: 'x', reasoning: { effort: 'low' } })).json()) as Json;
    expect(body.output.map((i: Json) => i.type)).toEqual(['reasoning', 'message']);
    expect(body.output[0]).toEqual({ id: expect.stringMatching(/^rs_/), type: 'reasoning', summary: [] });
    expect(body.usage.output_tokens_details.reasoning_tokens).toBe(2);
  });

  it('dropAfterChunks cuts the event stream after that many deltas', async () => {
    await start({ flavor: 'openai', faults: { dropAfterChunks: 2 } });
    const res = await post('/v1/responses', { model: 'm1', input: 'x', stream: true });
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let received = '';
    await expect((async () => { for (;;) { const { done, value } = await reader.read(); if (done) return; received += value; } })()).rejects.toThrow('terminated');
    expect(received.match(/event: response\.output_text\.delta/g)).toHaveLength(2);
    expect(received).not.toContain('response.completed');
  });
});

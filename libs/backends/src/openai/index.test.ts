import { afterEach, describe, expect, it } from 'vitest';
import { openAIChat, openAIEmbeddings, type ChatChunk, type ChatRequest } from '@homelab/dialects';
import { embeddingVector, simText, simToken, startOpenAISimulator, type OpenAISimulatorOptions, type Simulator } from '@homelab/simulators';
import { completeInternal, streamInternal } from '../internal.ts';
import { USER, WEATHER_TOOL, answerText, backendCall, chat, collectChunks, contentOf, everythingOf, gatewayError, internalCall, jsonBytes } from '../testkit.ts';
import type { Backend } from '../types.ts';
import { createOpenAIBackend, type OpenAIBackendOptions } from './index.ts';

const KEY = 'sk-proj-lab-0123456789';
const MODEL = 'gpt-4o-mini';

let sim: Simulator | undefined;
let backend: Backend | undefined;
afterEach(async () => {
  await backend?.close();
  await sim?.close();
  backend = undefined;
  sim = undefined;
});

async function setup(options: OpenAISimulatorOptions = {}, backendOptions: Partial<OpenAIBackendOptions> = {}): Promise<Backend> {
  sim = await startOpenAISimulator({ flavor: 'openai', models: [MODEL], apiKey: KEY, tokens: 4, ...options });
  backend = createOpenAIBackend({ baseURL: `${sim.url}/v1`, apiKey: KEY, models: [MODEL], connectTimeoutMs: 2000, idleTimeoutMs: 10_000, ...backendOptions });
  return backend;
}

const request = (fields: Partial<ChatRequest> & Record<string, unknown> = {}) => chat({ messages: USER, ...fields });

describe('OpenAI backend through the internal form', () => {
  it('lists the configured models without a request', async () => {
    const openai = await setup({}, { models: [MODEL, 'gpt-4.1'] });
    expect(openai.provider).toBe('openai');
    expect(await openai.listModels(new AbortController().signal)).toEqual([{ id: MODEL }, { id: 'gpt-4.1' }]);
    expect(sim!.requests).toHaveLength(0);
  });

  it('a whole chat in OpenAI’s wire format, with the bearer key', async () => {
    const openai = await setup();
    const completion = await completeInternal(openai, request({ stream_options: { include_usage: true } }), internalCall(MODEL));
    expect(completion).toMatchObject({ object: 'chat.completion', model: MODEL, system_fingerprint: 'fp_sim0001', choices: [{ message: { content: simText(4), refusal: null }, finish_reason: 'stop' }] });
    expect(completion.usage).toMatchObject({ prompt_tokens: 7, completion_tokens: 4, total_tokens: 11 });
    const record = sim!.requests[0]!;
    expect(record).toMatchObject({ method: 'POST', path: '/v1/chat/completions', completed: true });
    expect(record.headers.authorization).toBe(`Bearer ${KEY}`);
    expect(record.body).toEqual({ model: MODEL, messages: USER, stream: false });
  });

  it('sampling fields OpenAI refuses (top_k from an Anthropic or Ollama client) are left out of a translated request', async () => {
    const openai = await setup();
    const completion = await completeInternal(openai, request({ top_k: 40, temperature: 0.5 } as Partial<ChatRequest>), internalCall(MODEL));
    expect(completion.object).toBe('chat.completion');
    expect(sim!.requests[0]!.body).toEqual({ model: MODEL, messages: USER, stream: false, temperature: 0.5 });
  });

  it('a stream ends with the usage chunk OpenAI sends when asked', async () => {
    const openai = await setup();
    const chunks = await collectChunks(streamInternal(openai, request(), internalCall(MODEL)));
    expect(chunks[0]!.choices[0]!.delta).toEqual({ role: 'assistant', content: '', refusal: null });
    expect(chunks.slice(1, 5).map((c) => c.choices[0]!.delta.content)).toEqual([0, 1, 2, 3].map(simToken));
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe('stop');
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage: { prompt_tokens: 7, completion_tokens: 4, total_tokens: 11, prompt_tokens_details: { cached_tokens: 0 } } });
    expect(sim!.requests[0]!.body).toMatchObject({ stream: true, stream_options: { include_usage: true } });
  });

  it('tools round trip: a tool call (whole and streamed), then the tool result gives text', async () => {
    const openai = await setup();
    const first = await completeInternal(openai, request({ tools: [WEATHER_TOOL] }), internalCall(MODEL));
    expect(first.choices[0]!.finish_reason).toBe('tool_calls');
    const toolCall = first.choices[0]!.message.tool_calls![0]!;
    if (toolCall.type !== 'function') throw new Error('expected a function tool call');
    expect(JSON.parse(toolCall.function.arguments)).toEqual({ city: 'sim', unit: 'celsius' });

    const streamed = await collectChunks(streamInternal(openai, request({ tools: [WEATHER_TOOL] }), internalCall(MODEL)));
    const pieces = streamed.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(pieces[0]).toMatchObject({ index: 0, id: expect.stringMatching(/^call_/), type: 'function', function: { name: 'get_weather', arguments: '' } });
    expect(JSON.parse(pieces.map((p) => p.function?.arguments ?? '').join(''))).toEqual({ city: 'sim', unit: 'celsius' });
    expect(streamed.at(-2)!.choices[0]!.finish_reason).toBe('tool_calls');

    const messages: ChatRequest['messages'] = [...USER, first.choices[0]!.message, { role: 'tool', tool_call_id: toolCall.id, content: '{"temperature":21}' }];
    const answer = await completeInternal(openai, request({ tools: [WEATHER_TOOL], messages }), internalCall(MODEL));
    expect(answer.choices[0]).toMatchObject({ finish_reason: 'stop', message: { content: simText(4) } });
  });

  it('JSON mode: the content parses to the schema', async () => {
    const openai = await setup();
    const schema = { type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer' } }, required: ['name', 'age'] };
    const completion = await completeInternal(openai, request({ response_format: { type: 'json_schema', json_schema: { name: 'person', schema } } }), internalCall(MODEL));
    expect(JSON.parse(completion.choices[0]!.message.content!)).toEqual({ name: 'sim', age: 1 });
    const chunks = await collectChunks(streamInternal(openai, request({ response_format: { type: 'json_object' } }), internalCall(MODEL)));
    expect(JSON.parse(contentOf(chunks))).toEqual({ answer: simText(4) });
  });

  it('embeddings through the internal embeddings form', async () => {
    const openai = await setup({ models: ['text-embedding-3-small'] });
    const result = await completeInternal(openai, { form: 'embeddings', request: { model: 'alias', input: ['hello world', 'lab'] } }, internalCall('text-embedding-3-small'));
    expect(result.data.map((d) => d.embedding)).toEqual([embeddingVector('hello world'), embeddingVector('lab')]);
    expect(result.usage).toEqual({ prompt_tokens: 3, total_tokens: 3 });
    expect(sim!.requests[0]).toMatchObject({ path: '/v1/embeddings', body: { model: 'text-embedding-3-small', input: ['hello world', 'lab'] } });
  });
});

describe('OpenAI backend: pass-through bytes (send)', () => {
  it('the SDK sends the client bytes verbatim with its own authentication; the answer comes back raw', async () => {
    const openai = await setup();
    const body = new TextEncoder().encode(`{ "messages": [ {"role":"user","content":"What is the weather in Paris today?"} ],\n  "model": "${MODEL}", "logit_bias": {} }`);
    const answer = await openai.send(backendCall('openai.chat', body, { headers: { 'x-client-header': 'kept' } }));
    expect(answer).toMatchObject({ status: 200, contentType: 'application/json' });
    expect(JSON.parse(await answerText(answer))).toMatchObject({ object: 'chat.completion', service_tier: 'default', system_fingerprint: 'fp_sim0001' });
    const record = sim!.requests[0]!;
    expect(record).toMatchObject({ method: 'POST', path: '/v1/chat/completions' });
    expect(record.headers['content-length']).toBe(String(body.length));
    expect(record.body).toEqual(JSON.parse(new TextDecoder().decode(body)));
    expect(record.headers).toMatchObject({
      authorization: `Bearer ${KEY}`, 'content-type': 'application/json', 'user-agent': expect.stringMatching(/^OpenAI\/JS /), 'x-stainless-retry-count': '0', 'x-client-header': 'kept',
    });
  });

  it('a stream passes through as OpenAI’s SSE bytes', async () => {
    const openai = await setup();
    const body = openAIChat.passThrough!(jsonBytes({ model: 'lab/gpt', messages: USER, stream: true }), { model: MODEL, stream: true });
    const answer = await openai.send(backendCall('openai.chat', body, { stream: true }));
    expect(answer.contentType).toBe('text/event-stream; charset=utf-8');
    const events = (await answerText(answer)).split('\n\n').filter(Boolean);
    expect(events.at(-1)).toBe('data: [DONE]');
    // OpenAI's `usage: null` on every chunk, which OpenAI's types would not keep.
    expect(JSON.parse(events[0]!.slice('data: '.length))).toMatchObject({ usage: null, service_tier: 'default' });
    expect(sim!.requests[0]!.body).toEqual({ stream_options: { include_usage: true }, model: MODEL, messages: USER, stream: true });
  });

  it('embeddings pass through: the base64 vectors come back as OpenAI encoded them', async () => {
    const openai = await setup({ models: ['text-embedding-3-small'] });
    const body = openAIEmbeddings.passThrough!(jsonBytes({ model: 'alias', input: 'lab', encoding_format: 'base64' }), { model: 'text-embedding-3-small', stream: false });
    const answer = JSON.parse(await answerText(await openai.send(backendCall('openai.embeddings', body)))) as { data: { embedding: string }[] };
    expect(answer.data[0]!.embedding).toBe(Buffer.from(new Float32Array(embeddingVector('lab')).buffer).toString('base64'));
    expect(sim!.requests[0]!.path).toBe('/v1/embeddings');
  });

  it('OPENAI_ORG_ID and OPENAI_PROJECT_ID from the environment do not reach the backend', async () => {
    const saved = { org: process.env['OPENAI_ORG_ID'], project: process.env['OPENAI_PROJECT_ID'] };
    process.env['OPENAI_ORG_ID'] = 'org-from-env';
    process.env['OPENAI_PROJECT_ID'] = 'proj-from-env';
    try {
      const openai = await setup();
      await answerText(await openai.send(backendCall('openai.chat', { model: MODEL, messages: USER })));
      expect(sim!.requests[0]!.headers).not.toHaveProperty('openai-organization');
      expect(sim!.requests[0]!.headers).not.toHaveProperty('openai-project');
    } finally {
      for (const [name, value] of [['OPENAI_ORG_ID', saved.org], ['OPENAI_PROJECT_ID', saved.project]] as const) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });

  it('a dialect OpenAI does not speak → invalid_request, nothing sent', async () => {
    const openai = await setup();
    const err = await gatewayError(() => openai.send(backendCall('anthropic.messages', { model: MODEL, max_tokens: 10, messages: USER })));
    expect(err).toMatchObject({ code: 'invalid_request', message: 'openai does not speak anthropic.messages' });
    expect(sim!.requests).toHaveLength(0);
  });
});

describe('OpenAI backend errors', () => {
  it("a rejected key is unauthorized and OpenAI's masked echo of it is dropped", async () => {
    const openai = await setup({ apiKey: 'sk-other' });
    const err = await gatewayError(completeInternal(openai, request(), internalCall(MODEL)));
    expect(err).toMatchObject({ code: 'unauthorized', status: 401, retryable: false, message: "openai rejected the gateway's credentials (401)" });
    expect(everythingOf(err)).not.toMatch(/6789|sk-proj|Incorrect API key/);
  });

  it("a 429 in OpenAI's shape becomes rate_limited with the hint; the SDK does not retry by itself", async () => {
    const openai = await setup({ faults: { status: 429, retryAfterSeconds: 20 } });
    const err = await gatewayError(completeInternal(openai, request(), internalCall(MODEL)));
    expect(err).toMatchObject({ code: 'rate_limited', status: 429, retryable: true, retryAfterMs: 20_000, message: 'openai is rate limiting: Rate limit reached for requests. Please try again later.' });
    expect((await gatewayError(collectChunks(streamInternal(openai, request(), internalCall(MODEL)))))).toMatchObject({ code: 'rate_limited', retryAfterMs: 20_000 });
    expect((await gatewayError(openai.send(backendCall('openai.chat', { model: MODEL, messages: USER })))).code).toBe('rate_limited');
    expect(sim!.requests).toHaveLength(3);
  });

  it('500 → backend_error; 503 → backend_unavailable with Retry-After', async () => {
    const openai = await setup({ faults: { status: 500 } });
    expect(await gatewayError(completeInternal(openai, request(), internalCall(MODEL)))).toMatchObject({
      code: 'backend_error', status: 502, retryable: true, message: 'openai failed with 500: The server had an error while processing your request. Sorry about that!',
    });
    sim!.setFaults({ status: 503, retryAfterSeconds: 2 });
    expect(await gatewayError(collectChunks(streamInternal(openai, request(), internalCall(MODEL))))).toMatchObject({
      code: 'backend_unavailable', retryAfterMs: 2000, message: 'openai is unavailable: The engine is currently overloaded, please try again later.',
    });
  });

  it('404 → model_not_found; 400 → invalid_request with the param', async () => {
    const openai = await setup();
    expect(await gatewayError(completeInternal(openai, request(), internalCall('gpt-nope')))).toMatchObject({
      code: 'model_not_found', status: 404, message: 'openai: The model `gpt-nope` does not exist or you do not have access to it.',
    });
    expect(await gatewayError(openai.send(backendCall('openai.chat', { model: MODEL })))).toMatchObject({
      code: 'invalid_request', status: 400, retryable: false, param: 'messages', message: "openai: Missing required parameter: 'messages'.",
    });
  });

  it('connection refused → backend_unavailable', async () => {
    const closed = await startOpenAISimulator({ flavor: 'openai' });
    await closed.close();
    backend = createOpenAIBackend({ baseURL: `${closed.url}/v1`, apiKey: KEY, models: [MODEL], connectTimeoutMs: 2000, idleTimeoutMs: 10_000 });
    expect(await gatewayError(completeInternal(backend, request(), internalCall(MODEL)))).toMatchObject({
      code: 'backend_unavailable', retryable: true, message: 'openai is unreachable: ECONNREFUSED',
    });
  });

  it('no answer within headersTimeoutMs → timeout, and the request is abandoned', async () => {
    const openai = await setup({ faults: { stallBeforeFirstTokenMs: 10_000 } });
    const err = await gatewayError(completeInternal(openai, request(), internalCall(MODEL, { headersTimeoutMs: 100 })));
    expect(err).toMatchObject({ code: 'timeout', status: 504, retryable: true, message: 'openai did not answer within 100 ms' });
    await expect.poll(() => sim!.requests[0]!.aborted).toBe(true);
  });

  it('a stream that goes silent longer than the idle timeout → timeout', async () => {
    // The simulator sends the stream's headers at once, then stalls before the first token.
    const openai = await setup({ faults: { stallBeforeFirstTokenMs: 10_000 } }, { idleTimeoutMs: 100 });
    const err = await gatewayError(collectChunks(streamInternal(openai, request(), internalCall(MODEL, { bodyTimeoutMs: 100 }))));
    expect(err).toMatchObject({ code: 'timeout', status: 504, message: 'openai sent nothing for 100 ms' });
  });

  it('a malformed chunk mid-stream → backend_error', async () => {
    const openai = await setup({ faults: { malformedAfterChunks: 2 } });
    const received: ChatChunk[] = [];
    const err = await gatewayError(collectChunks(streamInternal(openai, request(), internalCall(MODEL)), received));
    expect(err).toMatchObject({ code: 'backend_error', message: expect.stringContaining('sent a malformed stream event') });
    expect(simText(2).startsWith(contentOf(received))).toBe(true);
  });

  it('a connection dropped mid-stream → backend_error after the chunks before it', async () => {
    const openai = await setup({ faults: { dropAfterChunks: 2 } });
    const received: ChatChunk[] = [];
    const err = await gatewayError(collectChunks(streamInternal(openai, request(), internalCall(MODEL)), received));
    expect(err).toMatchObject({ code: 'backend_error', message: 'openai closed the connection mid-answer' });
    expect(contentOf(received)).toBe(simText(2));
  });

  it('an abort mid-stream → cancelled, and the simulator sees the request aborted', async () => {
    const openai = await setup({ tokens: 200, tokenIntervalMs: 10 });
    const controller = new AbortController();
    let batches = 0;
    const err = await gatewayError(async () => {
      for await (const _chunks of streamInternal(openai, request(), internalCall(MODEL, { signal: controller.signal }))) if (++batches === 3) controller.abort();
    });
    expect(err).toMatchObject({ code: 'cancelled', status: 499, retryable: false });
    await expect.poll(() => sim!.requests[0]!.aborted).toBe(true);
    expect(sim!.requests[0]!.completed).toBe(false);
  });

  it('an abort before or while waiting for the answer → cancelled', async () => {
    const openai = await setup({ faults: { stallBeforeFirstTokenMs: 10_000 } });
    const early = new AbortController();
    early.abort();
    expect((await gatewayError(completeInternal(openai, request(), internalCall(MODEL, { signal: early.signal })))).code).toBe('cancelled');

    const controller = new AbortController();
    const pending = completeInternal(openai, request(), internalCall(MODEL, { signal: controller.signal }));
    await expect.poll(() => sim!.requests.length).toBe(1);
    controller.abort();
    expect((await gatewayError(pending)).code).toBe('cancelled');
    await expect.poll(() => sim!.requests[0]!.aborted).toBe(true);
  });

  it('breaking out of the stream early aborts the backend request', async () => {
    const openai = await setup({ tokens: 200, tokenIntervalMs: 10 });
    for await (const chunks of streamInternal(openai, request(), internalCall(MODEL))) if (contentOf(chunks as ChatChunk[])) break;
    await expect.poll(() => sim!.requests[0]!.aborted).toBe(true);
  });
});

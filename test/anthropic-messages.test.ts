import Anthropic from '@anthropic-ai/sdk';
import { jetstream } from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { estimateInputTokens, type CountTokensRequestPayload } from '@homelab/dialects';
import { encodePng, seededImage, simText, simToken } from '@homelab/simulators';
import { connectAs, startTestStack, type TestStack } from '@homelab/testing';
import { sampleSum, startTelemetry, waitFor, type RunningTelemetry } from './telemetry-kit.ts';
import { postOversizedBody } from './helpers/oversized-body.ts';

/*
 * The Anthropic Messages API end to end: the official `@anthropic-ai/sdk` against the ingress of a
 * real stack (keys on), every backend behind it. A Claude model passes through to the Anthropic
 * simulator byte for byte; every other model is translated (vLLM, Ollama, OpenAI).
 */

let stack: TestStack;
let telemetry: RunningTelemetry;
let key: string;
/** The SDK as most code uses it: `apiKey` (SDK 1.x sends it as a Bearer token). */
let client: Anthropic;

const VLLM_REASONING = 3;

beforeAll(async () => {
  stack = await startTestStack({
    auth: true, tokens: 8, vllmReasoningTokens: VLLM_REASONING,
    inferenceYaml: [
      '  aliases:',
      '    fast: [ollama/llama3.2:3b]',
      '    smart: [vllm/*, ollama/qwen2.5:32b, anthropic/claude-haiku-4-5]',
      '    cloudy: [anthropic/claude-haiku-4-5, ollama/llama3.2:3b]',
    ].join('\n'),
    // Aliases tried in their order (the default policy prefers local backends).
    extraYaml: 'routing:\n  policy: ordered',
  });
  telemetry = await startTelemetry(stack);
  key = await createKey({ name: 'laptop' });
  client = new Anthropic({ baseURL: stack.ingressUrl, apiKey: key, maxRetries: 0 });
}, 90_000);
afterAll(async () => { await stack?.[Symbol.asyncDispose](); });

async function admin(subject: string, body: unknown): Promise<Record<string, unknown>> {
  await using nc = await connectAs(stack.nats, 'admin');
  const reply = await nc.request(subject, JSON.stringify(body), { timeout: 5000 });
  expect(reply.headers?.get('Nats-Service-Error-Code')).toBeUndefined();
  return reply.json();
}

/** A key of the lab, once the ingress knows it (it watches the key bucket). */
async function createKey(body: Record<string, unknown>): Promise<string> {
  const created = (await admin('keys.create', body))['key'] as string;
  await waitFor(async () => (await fetch(`${stack.ingressUrl}/v1/models`, { headers: { 'x-api-key': created, 'anthropic-version': '2023-06-01' } })).status === 200, 5000, 'the key to be usable');
  return created;
}

/** Every `inference.completed` event stored so far. */
async function allEvents(): Promise<Record<string, unknown>[]> {
  await using nc = await connectAs(stack.nats, 'scripts');
  const consumer = await jetstream(nc).consumers.get('INFERENCE');
  const all: Record<string, unknown>[] = [];
  for await (const m of await consumer.fetch({ max_messages: 10_000, expires: 1000 })) all.push(m.json());
  return all.filter((e) => 'requestId' in e);
}

/** The events of these requests, once all are stored. */
async function events(requestIds: string[]): Promise<Record<string, unknown>[]> {
  let found: Record<string, unknown>[] = [];
  await waitFor(async () => {
    found = (await allEvents()).filter((e) => requestIds.includes(e['requestId'] as string));
    return found.length >= requestIds.length;
  }, 10_000, 'the inference.completed events');
  return found;
}

const hello: Anthropic.MessageParam[] = [{ role: 'user', content: 'Hello there' }];
const weather: Anthropic.Tool = {
  name: 'get_weather', description: 'The weather in a city',
  input_schema: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } }, required: ['city'] },
};

interface Target {
  model: string;
  backend: 'anthropic' | 'vllm' | 'ollama' | 'openai';
  /** The backend's model id. */
  upstream: string;
}

/** Every backend: Claude (pass-through), and vLLM, Ollama (directly and through an alias), OpenAI (translated). */
const TARGETS: Target[] = [
  { model: 'claude-haiku-4-5', backend: 'anthropic', upstream: 'claude-haiku-4-5' },
  { model: 'vllm/Qwen/Qwen2.5-7B-Instruct', backend: 'vllm', upstream: 'Qwen/Qwen2.5-7B-Instruct' },
  { model: 'llama3.2:3b', backend: 'ollama', upstream: 'llama3.2:3b' },
  { model: 'fast', backend: 'ollama', upstream: 'llama3.2:3b' },
  { model: 'gpt-4.1-mini', backend: 'openai', upstream: 'gpt-4.1-mini' },
];

/** What the backend's simulator received last on its generation path. */
function upstreamRequest(target: Target): Record<string, unknown> {
  const path = { anthropic: '/v1/messages', vllm: '/v1/chat/completions', ollama: '/api/chat', openai: '/v1/chat/completions' }[target.backend];
  return stack.sims[target.backend].requests.filter((r) => r.path === path).at(-1)!.body as Record<string, unknown>;
}

const textOf = (message: Anthropic.Message): string => message.content.filter((b) => b.type === 'text').map((b) => b.text).join('');

describe.each(TARGETS)('the Anthropic SDK → $model ($backend)', (target) => {
  it('a whole message: text, stop reason, usage, request-id and the route', async () => {
    const { data, response, request_id: requestId } = await client.messages.create({ model: target.model, max_tokens: 1024, messages: hello }).withResponse();
    expect(data.type).toBe('message');
    expect(data.role).toBe('assistant');
    expect(data.id).toMatch(/^msg_/);
    expect(textOf(data)).toBe(simText(8));
    expect(data.stop_reason).toBe('end_turn');
    expect(data.model).toBe(target.backend === 'anthropic' ? target.upstream : target.model);
    expect(data.usage.input_tokens).toBeGreaterThan(0);
    expect(data.usage.output_tokens).toBe(target.backend === 'vllm' ? 8 + VLLM_REASONING : 8);
    expect(requestId).toBe(response.headers.get('x-request-id'));
    expect(response.headers.get('x-homelab-backend')).toBe(target.backend);
    expect(response.headers.get('x-homelab-model')).toBe(target.upstream);
  });

  it('streamed: the SDK assembles the events into the final message', async () => {
    const stream = client.messages.stream({ model: target.model, max_tokens: 1024, messages: hello });
    const types = new Set<string>();
    let text = '';
    stream.on('streamEvent', (event) => { types.add(event.type); });
    stream.on('text', (delta) => { text += delta; });
    const final = await stream.finalMessage();
    expect(text).toBe(simText(8));
    expect(textOf(final)).toBe(simText(8));
    expect(final.stop_reason).toBe('end_turn');
    expect(final.usage.output_tokens).toBe(target.backend === 'vllm' ? 8 + VLLM_REASONING : 8);
    expect([...types]).toEqual(expect.arrayContaining(['message_start', 'content_block_start', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop']));
    expect(stream.request_id).toMatch(/^req_/);
  });

  it('a tool_use round trip: the call streamed as input_json_delta, then the tool_result answered', async () => {
    const ask: Anthropic.MessageParam[] = [{ role: 'user', content: 'Weather in Oslo?' }];
    const stream = client.messages.stream({ model: target.model, max_tokens: 1024, tools: [weather], tool_choice: { type: 'auto' }, messages: ask });
    let jsonDeltas = 0;
    stream.on('inputJson', () => { jsonDeltas++; });
    const call = await stream.finalMessage();
    expect(call.stop_reason).toBe('tool_use');
    const use = call.content.find((b): b is Anthropic.ToolUseBlock => b.type === 'tool_use')!;
    expect(use).toMatchObject({ name: 'get_weather', input: { city: expect.any(String) as string } });
    expect(use.id).not.toBe('');
    expect(jsonDeltas).toBeGreaterThanOrEqual(1);

    const answer = await client.messages.create({
      model: target.model, max_tokens: 1024, tools: [weather],
      messages: [...ask, { role: 'assistant', content: call.content }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: '4 °C, rain' }] }],
    });
    expect(answer.stop_reason).toBe('end_turn');
    expect(textOf(answer)).toBe(simText(8));
    // The backend got the result tied to the call's id, in its own form.
    const sent = upstreamRequest(target);
    const serialized = JSON.stringify(sent);
    expect(serialized).toContain('4 °C, rain');
    if (target.backend !== 'ollama') expect(serialized).toContain(use.id);
  });

  it('an image (base64 PNG) reaches the backend in its own form', async () => {
    const png = encodePng(seededImage(8, 8, 1)).toString('base64');
    const message = await client.messages.create({
      model: target.model, max_tokens: 1024,
      messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'base64', media_type: 'image/png', data: png } }, { type: 'text', text: 'What is this?' }] }],
    });
    expect(textOf(message)).toBe(simText(8));
    const sent = JSON.stringify(upstreamRequest(target));
    if (target.backend === 'ollama') expect((upstreamRequest(target)['messages'] as { images?: string[] }[]).at(-1)!.images).toEqual([png]);
    else if (target.backend === 'anthropic') expect(sent).toContain(`"data":"${png}"`);
    else expect(sent).toContain(`data:image/png;base64,${png}`);
  });

  it('stop_sequences, temperature, top_p, top_k and metadata reach the backend in its terms', async () => {
    // SDK 1.14's types dropped temperature, top_p and top_k (the newest Claude models fix them); older SDKs and Claude Code send them.
    const sampling = { temperature: 0.3, top_p: 0.9, top_k: 20 } as object;
    const message = await client.messages.create({ model: target.model, max_tokens: 64, messages: hello, stop_sequences: ['GPU'], metadata: { user_id: 'user-42' }, ...sampling });
    const sent = upstreamRequest(target);
    if (target.backend === 'anthropic') {
      expect(sent).toMatchObject({ stop_sequences: ['GPU'], temperature: 0.3, top_p: 0.9, top_k: 20, metadata: { user_id: 'user-42' } });
      // Anthropic stops at the sequence and says which.
      expect(message).toMatchObject({ stop_reason: 'stop_sequence', stop_sequence: 'GPU', content: [{ type: 'text', text: 'The lab answers from the local ' }] });
    } else if (target.backend === 'ollama') {
      expect(sent).toMatchObject({ options: { stop: ['GPU'], temperature: 0.3, top_p: 0.9, top_k: 20, num_predict: 64 } });
    } else {
      expect(sent).toMatchObject({ stop: ['GPU'], temperature: 0.3, top_p: 0.9, user: 'user-42', max_completion_tokens: 64 });
      // vLLM takes top_k; OpenAI would refuse it (400 "Unrecognized request argument"), so it is left out there.
      if (target.backend === 'vllm') expect(sent['top_k']).toBe(20);
      else expect(sent).not.toHaveProperty('top_k');
    }
  });

  it('count_tokens: Anthropic counts for Claude, vLLM\'s tokenizer for vLLM, the documented estimate elsewhere', async () => {
    const request = { model: target.model, system: 'You are terse.', messages: hello, tools: [weather] };
    const counted = await client.messages.countTokens(request);
    expect(Object.keys(counted)).toEqual(['input_tokens']);
    const withoutTools = await client.messages.countTokens({ model: target.model, system: 'You are terse.', messages: hello });
    // Tool definitions count, whoever counts.
    expect(counted.input_tokens).toBeGreaterThan(withoutTools.input_tokens);
    if (target.backend === 'anthropic') {
      const upstream = stack.sims.anthropic.requests.filter((r) => r.path === '/v1/messages/count_tokens').at(-1)!;
      expect(upstream.raw.toString()).toBe(JSON.stringify({ model: target.upstream, system: 'You are terse.', messages: hello }));
    } else if (target.backend === 'vllm') {
      const tokenized = stack.sims.vllm.requests.filter((r) => r.path === '/tokenize').slice(-2);
      expect(tokenized[0]!.body).toMatchObject({ model: target.upstream, messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Hello there' }], tools: [{ type: 'function' }] });
      expect(tokenized[1]!.body).not.toHaveProperty('tools');
    } else {
      expect(counted.input_tokens).toBe(estimateInputTokens(request as CountTokensRequestPayload));
    }
  });
});

describe('extended thinking', () => {
  it('Claude: thinking and signature deltas pass through; the SDK assembles the thinking block', async () => {
    const stream = client.messages.stream({ model: 'claude-haiku-4-5', max_tokens: 2048, thinking: { type: 'enabled', budget_tokens: 1024 }, messages: hello });
    let thinking = '';
    stream.on('thinking', (delta) => { thinking += delta; });
    const final = await stream.finalMessage();
    const block = final.content[0] as Anthropic.ThinkingBlock;
    expect(block.type).toBe('thinking');
    expect(block.thinking).toBe(thinking);
    expect(block.signature.length).toBeGreaterThan(0);
    expect(textOf(final)).toBe(simText(8));
  });

  it('vLLM with a reasoning parser: its reasoning comes as a thinking block (no signature), streamed and whole', async () => {
    const model = 'vllm/Qwen/Qwen2.5-7B-Instruct';
    const stream = client.messages.stream({ model, max_tokens: 4096, thinking: { type: 'enabled', budget_tokens: 2048 }, messages: hello });
    let thinking = '';
    stream.on('thinking', (delta) => { thinking += delta; });
    const final = await stream.finalMessage();
    const reasoning = Array.from({ length: VLLM_REASONING }, (_, i) => simToken(i)).join('');
    expect(thinking).toBe(reasoning);
    expect(final.content.map((b) => b.type)).toEqual(['thinking', 'text']);
    expect(final.content[0]).toEqual({ type: 'thinking', thinking: reasoning, signature: '' });
    // The budget became an effort vLLM's chat template understands.
    expect(stack.sims.vllm.requests.filter((r) => r.path === '/v1/chat/completions').at(-1)!.body).toMatchObject({ reasoning_effort: 'medium' });
    const whole = await client.messages.create({ model, max_tokens: 4096, thinking: { type: 'enabled', budget_tokens: 2048 }, messages: hello });
    expect(whole.content[0]).toEqual({ type: 'thinking', thinking: reasoning, signature: '' });
  });
});

describe('auth: the key as x-api-key or Bearer, as each client sends it', () => {
  it('apiKey and authToken (Bearer, SDK 1.x and Claude Code\'s ANTHROPIC_AUTH_TOKEN) and x-api-key (older SDKs, ANTHROPIC_API_KEY) all work', async () => {
    const viaToken = new Anthropic({ baseURL: stack.ingressUrl, apiKey: null, authToken: key, maxRetries: 0 });
    const viaHeader = new Anthropic({ baseURL: stack.ingressUrl, apiKey: null, authToken: null, defaultHeaders: { 'x-api-key': key }, maxRetries: 0 });
    for (const sdk of [client, viaToken, viaHeader]) {
      expect(textOf(await sdk.messages.create({ model: 'fast', max_tokens: 64, messages: hello }))).toBe(simText(8));
    }
  });

  it('no key, or a wrong one → AuthenticationError in Anthropic\'s shape, with its request id, never retried', async () => {
    const keyless = new Anthropic({ baseURL: stack.ingressUrl, apiKey: null, authToken: null, defaultHeaders: { authorization: null }, maxRetries: 2 });
    const wrong = new Anthropic({ baseURL: stack.ingressUrl, apiKey: 'hlk_not-a-key', maxRetries: 2 });
    for (const sdk of [keyless, wrong]) {
      const err = await sdk.messages.create({ model: 'fast', max_tokens: 64, messages: hello }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Anthropic.AuthenticationError);
      const api = err as InstanceType<typeof Anthropic.AuthenticationError>;
      expect(api.error).toMatchObject({ type: 'error', error: { type: 'authentication_error' } });
      expect(api.requestID).toMatch(/^req_/);
      expect(api.headers?.get('x-should-retry')).toBe('false');
      expect(api.message).not.toContain('hlk_not-a-key');
    }
  });
});

describe('errors, read by the SDK\'s own classes', () => {
  it('a bad body → BadRequestError naming the field', async () => {
    // @ts-expect-error: max_tokens is missing on purpose
    const err = await client.messages.create({ model: 'fast', messages: hello }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.BadRequestError);
    expect((err as InstanceType<typeof Anthropic.BadRequestError>).error).toMatchObject({ type: 'error', error: { type: 'invalid_request_error', message: expect.stringContaining('max_tokens') as string } });
  });

  it('an unknown model → NotFoundError', async () => {
    const err = await client.messages.create({ model: 'claude-no-such-model', max_tokens: 64, messages: hello }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.NotFoundError);
    expect((err as InstanceType<typeof Anthropic.NotFoundError>).error).toMatchObject({ error: { type: 'not_found_error', message: expect.stringContaining('claude-no-such-model') as string } });
  });

  it('Anthropic\'s own 400 reaches the client in Anthropic\'s words (Claude Code acts on some by their wording)', async () => {
    const err = await client.messages.create({ model: 'claude-haiku-4-5', max_tokens: 1500, thinking: { type: 'enabled', budget_tokens: 2048 }, messages: hello }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.BadRequestError);
    expect((err as InstanceType<typeof Anthropic.BadRequestError>).error).toEqual({ type: 'error', error: { type: 'invalid_request_error', message: '`max_tokens` must be greater than `thinking.budget_tokens`' } });
  });

  it('Anthropic overloaded (529) → overloaded_error, retryable, with Anthropic\'s retry-after passed on', async () => {
    stack.sims.anthropic.setFaults({ status: 529, retryAfterSeconds: 3 });
    const err = await client.messages.create({ model: 'claude-haiku-4-5', max_tokens: 64, messages: hello }).catch((e: unknown) => e);
    stack.sims.anthropic.setFaults({});
    expect(err).toBeInstanceOf(Anthropic.APIError);
    const api = err as InstanceType<typeof Anthropic.APIError>;
    expect(api.status).toBe(529);
    expect(api.error).toMatchObject({ type: 'error', error: { type: 'overloaded_error' } });
    expect(api.headers?.get('retry-after')).toBe('3');
    expect(api.headers?.get('retry-after-ms')).toBe('3000');
    expect(api.headers?.get('x-should-retry')).toBeNull();
  });

  it.each<[string, () => void]>([
    ['Claude (its own event: error, passed through)', () => stack.sims.anthropic.setFaults({ errorEventAfterChunks: 3 })],
    ['vLLM (a connection cut, told in Anthropic\'s event: error)', () => stack.sims.vllm.setFaults({ dropAfterChunks: 3 })],
  ])('an error after content reached the client: %s ends the stream, and the SDK raises it', async (_name, fault) => {
    fault();
    const model = _name.startsWith('Claude') ? 'claude-haiku-4-5' : 'vllm/Qwen/Qwen2.5-7B-Instruct';
    const stream = client.messages.stream({ model, max_tokens: 1024, messages: hello });
    // Content came first (vLLM's reasoning model thinks before it writes).
    let text = '';
    stream.on('text', (delta) => { text += delta; });
    stream.on('thinking', (delta) => { text += delta; });
    const err = await stream.finalMessage().catch((e: unknown) => e);
    stack.sims.anthropic.setFaults({});
    stack.sims.vllm.setFaults({});
    expect(err).toBeInstanceOf(Anthropic.APIError);
    expect(text.length).toBeGreaterThan(0);
    expect((err as InstanceType<typeof Anthropic.APIError>).error).toMatchObject({ type: 'error', error: { type: _name.startsWith('Claude') ? 'overloaded_error' : 'api_error' } });
  });

  it('a spent budget → RateLimitError that says so, and the SDK does not retry it', async () => {
    const budgeted = await createKey({ name: 'budgeted', dailyTokens: 10 });
    const sdk = new Anthropic({ baseURL: stack.ingressUrl, apiKey: budgeted, maxRetries: 2 });
    await sdk.messages.create({ model: 'claude-haiku-4-5', max_tokens: 64, messages: hello });
    // The usage ledger follows the events: the next requests are refused once it has counted the first.
    let err: unknown;
    await waitFor(async () => {
      err = await sdk.messages.create({ model: 'claude-haiku-4-5', max_tokens: 64, messages: hello }).then(() => undefined, (e: unknown) => e);
      return err !== undefined;
    }, 10_000, 'the budget to be spent');
    expect(err).toBeInstanceOf(Anthropic.RateLimitError);
    const api = err as InstanceType<typeof Anthropic.RateLimitError>;
    expect(api.error).toMatchObject({ error: { type: 'rate_limit_error', message: expect.stringContaining('a spending budget, not a rate limit: retrying will not help') as string } });
    expect(api.headers?.get('x-should-retry')).toBe('false');
    // One refusal for the key: the SDK (maxRetries 2) did not try again, as it would a plain 429.
    const [refusal] = await events([api.requestID!]);
    expect(refusal).toMatchObject({ status: 'error', errorType: 'budget_exceeded', dialect: 'anthropic.messages', apiKey: 'budgeted' });
    const all = await allEvents();
    expect(all.filter((e) => e['apiKey'] === 'budgeted' && e['errorType'] === 'budget_exceeded')).toHaveLength(1);
  });
});

/** A Messages request as raw bytes: odd spacing, key order and an unknown field that a re-serialization would lose. */
function rawRequest(model: string, stream: boolean): string {
  return `{"model":"${model}",  "max_tokens": 2048, "stream": ${stream},\n`
    + ' "thinking": {"type":"enabled","budget_tokens":1024},\n'
    + ' "system":[{"type":"text","text":"Be brief.","cache_control":{"type":"ephemeral","ttl":"1h"}}],\n'
    + ' "messages":[{"role":"user","content":[{"type":"text","text":"Caf\\u00e9 \u2615 notes","cache_control":{"type":"ephemeral"}}]}],\n'
    + ' "context_management":{"edits":[{"type":"clear_thinking_20251015","keep":"all"}]},\n'
    + ' "future_field": {"nested": [1, 2.50, "x"]} }';
}

const ANTHROPIC_HEADERS = { 'anthropic-version': '2023-06-01', 'anthropic-beta': 'extended-cache-ttl-2025-04-11,context-management-2025-06-27', 'content-type': 'application/json' };

describe('pass-through to Anthropic, byte for byte', () => {
  it.each([false, true])('stream %s: thinking and cache_control reach Anthropic unchanged, and its answer reaches the client unchanged', async (stream) => {
    const body = rawRequest('claude-haiku-4-5', stream);
    const res = await fetch(`${stack.ingressUrl}/v1/messages?beta=true`, { method: 'POST', headers: { ...ANTHROPIC_HEADERS, 'x-api-key': key }, body });
    const received = Buffer.from(await res.arrayBuffer());
    expect(res.status).toBe(200);
    const upstream = stack.sims.anthropic.requests.at(-1)!;
    expect(upstream.raw.equals(Buffer.from(body))).toBe(true);
    expect(upstream.headers['anthropic-version']).toBe('2023-06-01');
    expect(upstream.headers['anthropic-beta']).toBe(ANTHROPIC_HEADERS['anthropic-beta']);
    // The client's key never goes to Anthropic: the gateway's does.
    expect(JSON.stringify(upstream.headers)).not.toContain(key);
    expect(received.equals(Buffer.concat(upstream.written))).toBe(true);
    expect(res.headers.get('content-type')).toMatch(stream ? /^text\/event-stream/ : /^application\/json/);
    expect(res.headers.get('request-id')).toMatch(/^req_/);
    // The system block's breakpoint: written to the cache by the first request, read by the second, as Anthropic reports it.
    expect(received.toString()).toMatch(stream ? /"cache_read_input_tokens":[1-9]/ : /"cache_creation_input_tokens":[1-9]/);
  });

  it('through an alias only the model changes', async () => {
    const body = rawRequest('cloudy', false);
    const res = await fetch(`${stack.ingressUrl}/v1/messages`, { method: 'POST', headers: { ...ANTHROPIC_HEADERS, authorization: `Bearer ${key}` }, body });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-homelab-route-reason')).toBe('alias:cloudy > anthropic');
    const upstream = stack.sims.anthropic.requests.at(-1)!;
    expect(upstream.raw.toString()).toBe(body.replace('"model":"cloudy"', '"model":"claude-haiku-4-5"'));
    expect(Buffer.from(await res.arrayBuffer()).equals(Buffer.concat(upstream.written))).toBe(true);
  });
});

describe('bad input, in Anthropic\'s error shape, while the service keeps serving', () => {
  const post = (body: string, model = 'fast') => fetch(`${stack.ingressUrl}/v1/messages`, {
    method: 'POST', headers: { ...ANTHROPIC_HEADERS, 'x-api-key': key }, body: body.replace('MODEL', model),
  });
  const turn = '"messages":[{"role":"user","content":"Hi"}]';

  it.each<[string, string, string?]>([
    ['malformed JSON', '{"model":"MODEL","max_tokens":10,"messages":['],
    ['an empty body', ''],
    ['a JSON array', '[1,2]'],
    ['max_tokens of the wrong type', `{"model":"MODEL","max_tokens":"ten",${turn}}`, 'max_tokens'],
    ['messages of the wrong type', '{"model":"MODEL","max_tokens":10,"messages":"Hi"}', 'messages'],
    ['content of the wrong type', '{"model":"MODEL","max_tokens":10,"messages":[{"role":"user","content":42}]}', 'content'],
    ['an unknown role', '{"model":"MODEL","max_tokens":10,"messages":[{"role":"wizard","content":"Hi"}]}', 'role'],
    ['a thinking budget under 1024', `{"model":"MODEL","max_tokens":2048,"thinking":{"type":"enabled","budget_tokens":10},${turn}}`, 'budget_tokens'],
    ['an unknown block type, to a local model', '{"model":"MODEL","max_tokens":10,"messages":[{"role":"user","content":[{"type":"reasoning","text":"Hi"}]}]}', "unknown content block type 'reasoning'"],
  ])('%s → 400 invalid_request_error', async (_name, body, words) => {
    const res = await post(body);
    expect(res.status).toBe(400);
    expect(res.headers.get('request-id')).toMatch(/^req_/);
    const json = await res.json() as { type: string; error: { type: string; message: string } };
    expect(json).toEqual({ type: 'error', error: { type: 'invalid_request_error', message: expect.any(String) as string } });
    if (words) expect(json.error.message).toContain(words);
  });

  it('an unknown block type to Claude → Anthropic\'s own refusal', async () => {
    const res = await post('{"model":"MODEL","max_tokens":10,"messages":[{"role":"user","content":[{"type":"reasoning","text":"Hi"}]}]}', 'claude-haiku-4-5');
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ type: 'error', error: { type: 'invalid_request_error', message: expect.stringMatching(/^messages\.0\.content\.0: Input tag 'reasoning' found using 'type'/) as string } });
  });

  it('a body over the limit → 413 request_too_large, refused on its declared length', async () => {
    const answer = await postOversizedBody(`${stack.ingressUrl}/v1/messages`, { ...ANTHROPIC_HEADERS, 'x-api-key': key }, '{"model":"fast","messages":[');
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.text)).toMatchObject({ type: 'error', error: { type: 'request_too_large' } });
    expect(answer.headers['request-id']).toMatch(/^req_/);
  });

  it('after all of that, the service still serves', async () => {
    const res = await post(`{"model":"MODEL","max_tokens":10,${turn}}`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as Anthropic.Message).type).toBe('message');
  });
});

describe('GET /v1/models in Anthropic\'s shape', () => {
  it('the SDK pages through every model of the lab, aliases included', async () => {
    const ids: string[] = [];
    for await (const model of client.models.list({ limit: 2 })) {
      expect(model).toEqual({ type: 'model', id: expect.any(String) as string, display_name: model.id, created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/) as string });
      ids.push(model.id);
    }
    expect(ids).toEqual(expect.arrayContaining(['claude-haiku-4-5', 'Qwen/Qwen2.5-7B-Instruct', 'llama3.2:3b', 'gpt-4.1-mini', 'fast', 'smart', 'cloudy']));
    expect(new Set(ids).size).toBe(ids.length);
    const page = await client.models.list({ limit: 2 });
    expect(page.data).toHaveLength(2);
    expect(page.has_more).toBe(true);
    expect(page.last_id).toBe(page.data[1]!.id);
  });

  it('one model, and NotFoundError for an unknown one', async () => {
    expect(await client.models.retrieve('smart')).toMatchObject({ type: 'model', id: 'smart' });
    const err = await client.models.retrieve('no-such-model').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.NotFoundError);
    expect((err as InstanceType<typeof Anthropic.NotFoundError>).error).toMatchObject({ type: 'error', error: { type: 'not_found_error' } });
  });

  it('a key sees only the models it may use; OpenAI\'s clients still get OpenAI\'s list', async () => {
    const onlyFast = await createKey({ name: 'kids-tablet', models: ['fast'] });
    const scoped = new Anthropic({ baseURL: stack.ingressUrl, apiKey: onlyFast, maxRetries: 0 });
    expect((await scoped.models.list()).data.map((m) => m.id)).toEqual(['fast']);
    expect(await scoped.models.retrieve('smart').catch((e: unknown) => e)).toBeInstanceOf(Anthropic.NotFoundError);
    const openai = await (await fetch(`${stack.ingressUrl}/v1/models`, { headers: { authorization: `Bearer ${onlyFast}` } })).json() as { object: string; data: { id: string; object: string }[] };
    expect(openai).toMatchObject({ object: 'list', data: [{ id: 'fast', object: 'model' }] });
  });
});

describe('events and metrics name the dialect', () => {
  it('each request\'s inference.completed event says anthropic.messages, with its tokens; the metrics count them by dialect', async () => {
    const whole = await client.messages.create({ model: 'claude-haiku-4-5', max_tokens: 64, messages: hello }).withResponse();
    const streamed = client.messages.stream({ model: 'fast', max_tokens: 64, messages: hello });
    await streamed.finalMessage();
    const found = await events([whole.request_id!, streamed.request_id!]);
    const byId = new Map(found.map((e) => [e['requestId'], e]));
    expect(byId.get(whole.request_id)).toMatchObject({
      dialect: 'anthropic.messages', operation: 'chat', stream: false, backend: 'anthropic', status: 'ok', apiKey: 'laptop', outputTokens: 8, finishReason: 'end_turn',
    });
    expect(byId.get(streamed.request_id)).toMatchObject({ dialect: 'anthropic.messages', stream: true, backend: 'ollama', requestedModel: 'fast', status: 'ok', outputTokens: 8 });

    await waitFor(async () => sampleSum(await telemetry.scrape(), 'homelab_gateway_requests_total', { dialect: 'anthropic.messages', gen_ai_provider_name: 'ollama', stream: 'true' }) >= 1, 15_000, 'the metrics');
    const text = await telemetry.scrape();
    expect(sampleSum(text, 'homelab_gateway_requests_total', { dialect: 'anthropic.messages', gen_ai_provider_name: 'anthropic', status: 'ok' })).toBeGreaterThanOrEqual(1);
    expect(sampleSum(text, 'homelab_gateway_requests_total', { dialect: 'openai.chat' })).toBe(0);
  });
});

describe('the same API on NATS, for scripts', () => {
  it('inference.messages answers a Message; inference.messages.count_tokens a count; errors in Anthropic\'s shape', async () => {
    await using nc = await connectAs(stack.nats, 'scripts');
    const headers = natsHeaders();
    headers.set('anthropic-version', '2023-06-01');
    // A script without a key gets what auth.scripts allows: local models.
    const reply = await nc.request('inference.messages', JSON.stringify({ model: 'fast', max_tokens: 64, messages: hello }), { timeout: 10_000, headers });
    expect(reply.headers?.get('Nats-Service-Error-Code')).toBeFalsy();
    expect(reply.headers?.get('Homelab-Dialect')).toBe('anthropic.messages');
    expect(reply.json()).toMatchObject({ type: 'message', role: 'assistant', model: 'fast', content: [{ type: 'text', text: simText(8) }] });
    const counted = await nc.request('inference.messages.count_tokens', JSON.stringify({ model: 'fast', messages: hello }), { timeout: 10_000 });
    expect(counted.json()).toEqual({ input_tokens: expect.any(Number) as number });
    const refused = await nc.request('inference.messages', JSON.stringify({ model: 'fast', messages: hello }), { timeout: 10_000 });
    expect(refused.headers?.get('Nats-Service-Error-Code')).toBe('400');
    expect(refused.json()).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' } });
  });
});

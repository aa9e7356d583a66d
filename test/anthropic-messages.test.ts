import Anthropic from '@anthropic-ai/sdk';
import { jetstream } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { estimateInputTokens, type CountTokensRequestPayload } from '@homelab/dialects';
import { encodePng, seededImage, simText, simToken } from '@homelab/simulators';
import { connectAs, startTestStack, type TestStack } from '@homelab/testing';
import { sampleSum, startTelemetry, waitFor, type RunningTelemetry } from './telemetry-kit.ts';

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

async function events(requestIds: string[]): Promise<Record<string, unknown>[]> {
  await using nc = await connectAs(stack.nats, 'scripts');
  const found: Record<string, unknown>[] = [];
  await waitFor(async () => {
    const consumer = await jetstream(nc).consumers.get('INFERENCE');
    const all: Record<string, unknown>[] = [];
    for await (const m of await consumer.fetch({ max_messages: 10_000, expires: 1000 })) all.push(m.json());
    found.splice(0, found.length, ...all.filter((e) => requestIds.includes(e['requestId'] as string)));
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

  it('stop_sequences, temperature, top_p and metadata reach the backend in its terms', async () => {
    // SDK 1.14's types dropped temperature and top_p (the newest Claude models fix them); older SDKs and Claude Code send them.
    const sampling = { temperature: 0.3, top_p: 0.9 } as object;
    await client.messages.create({ model: target.model, max_tokens: 64, messages: hello, stop_sequences: ['GPU'], metadata: { user_id: 'user-42' }, ...sampling });
    const sent = upstreamRequest(target);
    if (target.backend === 'anthropic') {
      expect(sent).toMatchObject({ stop_sequences: ['GPU'], temperature: 0.3, top_p: 0.9, metadata: { user_id: 'user-42' } });
    } else if (target.backend === 'ollama') {
      expect(sent).toMatchObject({ options: { stop: ['GPU'], temperature: 0.3, top_p: 0.9, num_predict: 64 } });
    } else {
      expect(sent).toMatchObject({ stop: ['GPU'], temperature: 0.3, top_p: 0.9, user: 'user-42', max_completion_tokens: 64 });
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

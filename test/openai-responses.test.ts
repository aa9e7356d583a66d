import { readFileSync, writeFileSync } from 'node:fs';
import OpenAI from 'openai';
import { jetstream } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OMITTED_PART_TEXT } from '@homelab/dialects';
import { simText, type SimRequestRecord, type Simulator } from '@homelab/simulators';
import { connectAs, freePort, startTestStack, type TestStack } from '@homelab/testing';
import { postOversizedBody } from './helpers/oversized-body.ts';

/*
 * The OpenAI Responses API through the real stack, read with the official `openai` SDK: every
 * backend (vLLM, Ollama and Anthropic translated, OpenAI passed through), the stored responses
 * (`previous_response_id` across two ingress replicas, retrieve, input items, delete, another key's
 * 404, expiry, a restart), the errors in the SDK's classes, bad input, and the pass-through to
 * OpenAI byte for byte.
 */

let stack: TestStack;
let second: string;
const keys: Record<'alice' | 'bob' | 'broke', string> = { alice: '', bob: '', broke: '' };
let alice: OpenAI;
let aliceOnSecond: OpenAI;
let bob: OpenAI;

const sdk = (baseUrl: string, apiKey: string, options: Partial<ConstructorParameters<typeof OpenAI>[0]> = {}) =>
  new OpenAI({ baseURL: `${baseUrl}/v1`, apiKey, maxRetries: 0, ...options });

async function createKey(name: string, extra: Record<string, unknown> = {}): Promise<string> {
  await using nc = await connectAs(stack.nats, 'admin');
  const reply = await nc.request('keys.create', JSON.stringify({ name, ...extra }), { timeout: 5000 });
  return (reply.json() as { key: string }).key;
}

/** A new key is usable on both ingress replicas within moments (each watches the bucket). */
async function waitUsable(key: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const answers = await Promise.all([stack.ingressUrl, second].map((u) => fetch(`${u}/v1/models`, { headers: { authorization: `Bearer ${key}` } })));
    if (answers.every((a) => a.status === 200)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('key never became usable');
}

async function startSecondIngress(s: TestStack): Promise<string> {
  const port = await freePort();
  await s.startService('ingress', { PORT: String(port) });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try { if ((await fetch(`${url}/healthz`)).ok) break; } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  return url;
}

beforeAll(async () => {
  stack = await startTestStack({ tokens: 8, auth: true });
  second = await startSecondIngress(stack);
  keys.alice = await createKey('alice');
  keys.bob = await createKey('bob');
  keys.broke = await createKey('broke', { dailyTokens: 0 });
  for (const key of Object.values(keys)) await waitUsable(key);
  alice = sdk(stack.ingressUrl, keys.alice);
  aliceOnSecond = sdk(second, keys.alice);
  bob = sdk(stack.ingressUrl, keys.bob);
}, 90_000);
afterAll(async () => { await stack?.[Symbol.asyncDispose](); });

// A 1×1 PNG.
const PNG_BASE64 = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==';
const PNG = `data:image/png;base64,${PNG_BASE64}`;
const WEATHER: OpenAI.Responses.FunctionTool = {
  type: 'function', name: 'get_weather', description: 'The weather in a city', strict: false,
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};
const PERSON = { type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer' } }, required: ['name', 'age'], additionalProperties: false };

type Body = Record<string, unknown>;
/** The newest request a simulator got on `path`, parsed. */
function lastBody(sim: Simulator, path: string): Body {
  const record = sim.requests.filter((r) => r.path === path).at(-1);
  expect(record, `a request on ${path}`).toBeDefined();
  return record!.body as Body;
}

interface Backend {
  name: 'vllm' | 'ollama' | 'openai' | 'anthropic';
  model: string;
  /** Where the backend got the request (the Responses request itself for OpenAI). */
  path: string;
  /** What the backend received for: `instructions: 'Be brief.'` + `input: 'Hello'`. */
  instructions: Body;
  /** …an input_image with a text part. */
  image: Body;
  /** …a JSON schema in text.format and max_output_tokens: 40. */
  format: Body;
  /** …the function call's output, sent after the call with previous_response_id. */
  toolResult: (callId: string) => Body;
}

const BACKENDS: Backend[] = [
  {
    name: 'vllm', model: 'vllm/Qwen/Qwen2.5-7B-Instruct', path: '/v1/chat/completions',
    instructions: { model: 'Qwen/Qwen2.5-7B-Instruct', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello' }] },
    image: { messages: [{ role: 'user', content: [{ type: 'text', text: 'What is this?' }, { type: 'image_url', image_url: { url: PNG, detail: 'low' } }] }] },
    format: { response_format: { type: 'json_schema', json_schema: { name: 'person', schema: PERSON, strict: true } }, max_completion_tokens: 40 },
    // The stored conversation: the first message as content parts, as OpenAI lists input items.
    toolResult: (id) => ({ messages: [
      { role: 'user', content: [{ type: 'text', text: 'Weather in Oslo?' }] },
      { role: 'assistant', tool_calls: [{ id, type: 'function', function: { name: 'get_weather' } }] },
      { role: 'tool', tool_call_id: id, content: '{"celsius":3}' },
    ] }),
  },
  {
    name: 'ollama', model: 'ollama/llama3.2:3b', path: '/api/chat',
    instructions: { model: 'llama3.2:3b', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello' }] },
    image: { messages: [{ role: 'user', content: 'What is this?', images: [PNG_BASE64] }] },
    format: { format: PERSON, options: { num_predict: 40 } },
    toolResult: (id) => ({ messages: [
      { role: 'user', content: 'Weather in Oslo?' },
      { role: 'assistant', tool_calls: [{ function: { name: 'get_weather', arguments: { city: 'sim' } } }] },
      { role: 'tool', tool_name: 'get_weather', tool_call_id: id, content: '{"celsius":3}' },
    ] }),
  },
  {
    name: 'openai', model: 'gpt-4.1-mini', path: '/v1/responses',
    instructions: { model: 'gpt-4.1-mini', instructions: 'Be brief.', input: 'Hello' },
    image: { input: [{ role: 'user', content: [{ type: 'input_text', text: 'What is this?' }, { type: 'input_image', image_url: PNG, detail: 'low' }] }] },
    format: { text: { format: { type: 'json_schema', name: 'person', schema: PERSON, strict: true } }, max_output_tokens: 40 },
    // OpenAI wrote the previous response and keeps it too: previous_response_id passes through.
    toolResult: (id) => ({ previous_response_id: expect.stringMatching(/^resp_/) as unknown, input: [{ type: 'function_call_output', call_id: id, output: '{"celsius":3}' }] }),
  },
  {
    name: 'anthropic', model: 'claude-haiku-4-5', path: '/v1/messages',
    instructions: { model: 'claude-haiku-4-5', system: 'Be brief.', messages: [{ role: 'user', content: [{ type: 'text', text: 'Hello' }] }] },
    image: { messages: [{ role: 'user', content: [{ type: 'text', text: 'What is this?' }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG_BASE64 } }] }] },
    // Anthropic has no response_format: the schema goes into the system prompt.
    format: { system: expect.stringContaining(JSON.stringify(PERSON)) as unknown, max_tokens: 40 },
    toolResult: (id) => ({ messages: [
      { role: 'user', content: [{ type: 'text', text: 'Weather in Oslo?' }] },
      { role: 'assistant', content: [{ type: 'tool_use', id, name: 'get_weather' }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: id, content: '{"celsius":3}' }] },
    ] }),
  },
];

const simOf = (name: Backend['name']): Simulator => stack.sims[name];

describe.each(BACKENDS)('Responses through $name', (backend) => {
  it('text with instructions: a Response the SDK reads (output_text, usage), the routing headers; the backend got the instructions', async () => {
    const { data, response } = await alice.responses.create({ model: backend.model, instructions: 'Be brief.', input: 'Hello' }).withResponse();
    expect(data).toMatchObject({ object: 'response', status: 'completed', model: backend.model, instructions: 'Be brief.', store: true });
    expect(data.id).toMatch(/^resp_[0-9a-f]{40,}$/);
    expect(data.output_text).toBe(simText(8));
    expect(data.usage).toMatchObject({ output_tokens: 8 });
    expect(data.usage!.input_tokens).toBeGreaterThan(0);
    expect(response.headers.get('x-homelab-backend')).toBe(backend.name);
    expect(lastBody(simOf(backend.name), backend.path)).toMatchObject(backend.instructions);
  });

  it("streams the semantic events in order, each with its sequence_number; responses.stream(…).finalResponse() assembles the Response", async () => {
    const stream = await alice.responses.create({ model: backend.model, input: 'Hello', stream: true });
    const events: OpenAI.Responses.ResponseStreamEvent[] = [];
    for await (const event of stream) events.push(event);
    expect(events.map((e) => e.type).slice(0, 2)).toEqual(['response.created', 'response.in_progress']);
    expect(events.at(-1)!.type).toBe('response.completed');
    expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i));
    for (const type of ['response.output_item.added', 'response.content_part.added', 'response.output_text.done', 'response.output_item.done']) {
      expect(events.some((e) => e.type === type), type).toBe(true);
    }
    const deltas = events.filter((e) => e.type === 'response.output_text.delta');
    expect(deltas.length).toBeGreaterThan(1);
    expect(deltas.map((e) => e.delta).join('')).toBe(simText(8));
    const created = events[0] as OpenAI.Responses.ResponseCreatedEvent;
    const completed = events.at(-1) as OpenAI.Responses.ResponseCompletedEvent;
    expect(completed.response.id).toBe(created.response.id);
    expect(completed.response.usage).toMatchObject({ output_tokens: 8 });

    const final = await alice.responses.stream({ model: backend.model, instructions: 'Be brief.', input: 'Hello' }).finalResponse();
    expect(final).toMatchObject({ status: 'completed', output_text: simText(8), instructions: 'Be brief.' });
    // The streamed answer is stored as it ended.
    expect((await alice.responses.retrieve(final.id)).output).toEqual(final.output.map((item) => stripParsed(item)));
  });

  it('a function call round trip: the call, then its output continued with previous_response_id on the other ingress replica', async () => {
    const first = await alice.responses.create({ model: backend.model, input: 'Weather in Oslo?', tools: [WEATHER] });
    const call = first.output.find((item): item is OpenAI.Responses.ResponseFunctionToolCall => item.type === 'function_call');
    expect(call, JSON.stringify(first.output)).toBeDefined();
    expect(call!.name).toBe('get_weather');
    expect(JSON.parse(call!.arguments)).toHaveProperty('city');
    const answer = await aliceOnSecond.responses.create({
      model: backend.model, previous_response_id: first.id, tools: [WEATHER],
      input: [{ type: 'function_call_output', call_id: call!.call_id, output: '{"celsius":3}' }],
    });
    expect(answer).toMatchObject({ status: 'completed', previous_response_id: first.id, output_text: simText(8) });
    expect(lastBody(simOf(backend.name), backend.path)).toMatchObject(backend.toolResult(call!.call_id));
    // The whole conversation is the continued response's input, on either replica.
    const items = await aliceOnSecond.responses.inputItems.list(answer.id, { order: 'asc' });
    expect(items.data.map((item) => item.type)).toEqual(['message', 'function_call', 'function_call_output']);
  });

  it('an input_image reaches the backend in its own image form', async () => {
    const image = await alice.responses.create({
      model: backend.model,
      input: [{ role: 'user', content: [{ type: 'input_text', text: 'What is this?' }, { type: 'input_image', image_url: PNG, detail: 'low' }] }],
    });
    expect(image.output_text).toBe(simText(8));
    expect(lastBody(simOf(backend.name), backend.path)).toMatchObject(backend.image);
  });

  it('text.format with a JSON schema and max_output_tokens reach the backend; a short limit ends incomplete', async () => {
    const structured = await alice.responses.create({
      model: backend.model, input: 'A person, please', max_output_tokens: 40,
      text: { format: { type: 'json_schema', name: 'person', schema: PERSON, strict: true } },
    });
    expect(lastBody(simOf(backend.name), backend.path)).toMatchObject(backend.format);
    expect(structured.text?.format).toMatchObject({ type: 'json_schema', name: 'person' });
    // The simulators of OpenAI, vLLM and Ollama honour the schema; Anthropic's has no structured output.
    if (backend.name !== 'anthropic') expect(JSON.parse(structured.output_text)).toEqual({ name: expect.any(String) as unknown, age: expect.any(Number) as unknown });
    const cut = await alice.responses.create({ model: backend.model, input: 'Hello', max_output_tokens: 3 });
    expect(cut).toMatchObject({ status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' }, max_output_tokens: 3 });
    expect(cut.output_text).toBe(simText(3));
  });
});

/** The SDK adds `parsed` to output_text parts it read from a stream; the stored Response has none. */
function stripParsed(item: OpenAI.Responses.ResponseOutputItem): unknown {
  if (item.type !== 'message') return item;
  return { ...item, content: item.content.map((part) => { const { parsed: _parsed, ...rest } = part as typeof part & { parsed?: unknown }; return rest; }) };
}

describe('stored responses', () => {
  it('retrieve, list the input items (paged, either order) and delete, through the SDK', async () => {
    const first = await alice.responses.create({ model: 'ollama/llama3.2:3b', instructions: 'Be brief.', input: [{ role: 'user', content: 'One' }, { role: 'user', content: 'Two' }] });
    const next = await aliceOnSecond.responses.create({ model: 'vllm/Qwen/Qwen2.5-7B-Instruct', previous_response_id: first.id, input: 'Three' });
    expect(await aliceOnSecond.responses.retrieve(first.id)).toEqual(stripUndefined(first));
    // vLLM got the whole conversation; the first turn's instructions are not carried over (as at OpenAI).
    expect(lastBody(stack.sims.vllm, '/v1/chat/completions')['messages']).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'One' }] }, { role: 'user', content: [{ type: 'text', text: 'Two' }] },
      { role: 'assistant', content: simText(8) }, { role: 'user', content: 'Three' },
    ]);
    const all = await alice.responses.inputItems.list(next.id, { order: 'asc' });
    expect(all.data.map((item) => (item as { content: { text: string }[] }).content[0]!.text)).toEqual(['One', 'Two', simText(8), 'Three']);
    expect(all.has_more).toBe(false);
    // Newest first by default; pages of two, which the SDK's auto-pagination follows.
    const newest = await alice.responses.inputItems.list(next.id, { limit: 2 });
    expect(newest.data.map((item) => (item as { content: { text: string }[] }).content[0]!.text)).toEqual(['Three', simText(8)]);
    expect(newest.has_more).toBe(true);
    const paged: string[] = [];
    for await (const item of alice.responses.inputItems.list(next.id, { limit: 2 })) paged.push(item.id);
    expect(paged).toEqual([...all.data].reverse().map((item) => item.id));

    await alice.responses.delete(first.id);
    await expect(alice.responses.retrieve(first.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(aliceOnSecond.responses.delete(first.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    // The response that continued it keeps its own copy of the conversation.
    expect((await alice.responses.retrieve(next.id)).previous_response_id).toBe(first.id);
    const bad = await alice.responses.inputItems.list(next.id, { limit: 500 }).catch((err: unknown) => err);
    expect(bad).toBeInstanceOf(OpenAI.BadRequestError);
    expect(bad).toMatchObject({ param: 'limit' });
  });

  it("another key gets the same 404 as a missing id, cannot continue it (400 previous_response_id), and the owner's response stays", async () => {
    const mine = await alice.responses.create({ model: 'ollama/llama3.2:3b', input: 'Private' });
    const missing = `resp_${'0'.repeat(48)}`;
    const status = async (client: OpenAI, id: string) => {
      const [get, items, del] = await Promise.all([
        client.responses.retrieve(id).catch((e: unknown) => e), client.responses.inputItems.list(id).catch((e: unknown) => e), client.responses.delete(id).catch((e: unknown) => e),
      ]);
      return [get, items, del].map((e) => (e instanceof OpenAI.APIError ? { status: e.status, error: JSON.stringify(e.error).replace(id, '<id>') } : 'ok'));
    };
    const asBob = await status(bob, mine.id);
    expect(asBob).toEqual(await status(bob, missing));
    expect(asBob.every((r) => typeof r === 'object' && r.status === 404)).toBe(true);
    expect(asBob[0]).toMatchObject({ error: expect.stringContaining("Response with id '<id>' not found.") as unknown });
    const continued = await bob.responses.create({ model: 'ollama/llama3.2:3b', previous_response_id: mine.id, input: 'Tell me' }).catch((e: unknown) => e);
    expect(continued).toBeInstanceOf(OpenAI.BadRequestError);
    expect(continued).toMatchObject({ status: 400, param: 'previous_response_id', message: expect.stringContaining(`Previous response with id '${mine.id}' not found.`) as unknown });
    expect((await alice.responses.retrieve(mine.id)).id).toBe(mine.id);
  });

  it('store: false keeps nothing; continuing it is a 400', async () => {
    const unkept = await alice.responses.create({ model: 'vllm/Qwen/Qwen2.5-7B-Instruct', input: 'Forget me', store: false });
    expect(unkept).toMatchObject({ store: false });
    await expect(alice.responses.retrieve(unkept.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(alice.responses.create({ model: 'vllm/Qwen/Qwen2.5-7B-Instruct', previous_response_id: unkept.id, input: 'x' })).rejects.toBeInstanceOf(OpenAI.BadRequestError);
  });

  it('a conversation moves between backends: to OpenAI expanded (without other backends\' reasoning), from OpenAI to a local model expanded too', async () => {
    // Claude thinks (reasoning.effort → a thinking budget): its reasoning item is stored with the answer.
    const local = await alice.responses.create({ model: 'claude-haiku-4-5', input: 'Hi', reasoning: { effort: 'low' } });
    expect(local.output.map((o) => o.type)).toEqual(['reasoning', 'message']);
    const atOpenAI = await aliceOnSecond.responses.create({ model: 'gpt-4.1-mini', previous_response_id: local.id, input: 'And now?' });
    const sent = lastBody(stack.sims.openai, '/v1/responses');
    expect(sent).not.toHaveProperty('previous_response_id');
    expect((sent['input'] as Body[]).map((item) => item['type'] ?? 'message')).toEqual(['message', 'message', 'message']);
    expect((sent['input'] as Body[])[1]).toMatchObject({ role: 'assistant', content: [{ type: 'output_text', text: local.output_text }] });
    expect(atOpenAI.previous_response_id).toBeNull(); // OpenAI's own answer: it saw no previous_response_id
    const back = await alice.responses.create({ model: 'ollama/llama3.2:3b', previous_response_id: atOpenAI.id, input: 'Back home' });
    expect(back.previous_response_id).toBe(atOpenAI.id);
    expect((lastBody(stack.sims.ollama, '/api/chat')['messages'] as Body[]).map((m) => m['content'])).toEqual(['Hi', simText(8), 'And now?', simText(8), 'Back home']);
  });

  it('item references, as the Vercel AI SDK sends earlier answers when store is on: resolved from the store for every backend', async () => {
    const ref = (id: string) => ({ type: 'item_reference' as const, id });
    const first = await alice.responses.create({ model: 'claude-haiku-4-5', input: 'Hi', reasoning: { effort: 'low' } });
    const [thought, said] = first.output.map((item) => item.id!);
    const second = await aliceOnSecond.responses.create({ model: 'ollama/llama3.2:3b', input: [{ role: 'user', content: 'Hi' }, ref(thought!), ref(said!), { role: 'user', content: 'And?' }] });
    expect((lastBody(stack.sims.ollama, '/api/chat')['messages'] as Body[]).map((m) => [m['role'], m['content']])).toEqual([['user', 'Hi'], ['assistant', first.output_text], ['user', 'And?']]);
    // To OpenAI: the other backends' items inline (their reasoning left out), OpenAI's own by reference.
    const third = await alice.responses.create({ model: 'gpt-4.1-mini', input: [{ role: 'user', content: 'Hi' }, ref(thought!), ref(said!), { role: 'user', content: 'And?' }, ref(second.output[0]!.id!), { role: 'user', content: 'Last' }] });
    expect((lastBody(stack.sims.openai, '/v1/responses')['input'] as Body[]).map((item) => [item['type'], item['role'] ?? null])).toEqual([
      [undefined, 'user'], ['message', 'assistant'], [undefined, 'user'], ['message', 'assistant'], [undefined, 'user'],
    ]);
    await alice.responses.create({ model: 'gpt-4.1-mini', input: [ref(third.output[0]!.id!), { role: 'user', content: 'Go on' }] });
    expect(lastBody(stack.sims.openai, '/v1/responses')['input']).toEqual([ref(third.output[0]!.id!), { role: 'user', content: 'Go on' }]);
    // Another key cannot name them.
    const foreign = await bob.responses.create({ model: 'ollama/llama3.2:3b', input: [{ role: 'user', content: 'Hi' }, ref(said!)] }).catch((e: unknown) => e);
    expect(foreign).toBeInstanceOf(OpenAI.BadRequestError);
    expect(foreign).toMatchObject({ param: 'input[1]', message: expect.stringContaining(`Item with id '${said}' not found.`) as unknown });
  });

  it('images in a long conversation: the stored record stays under the bus limit by leaving out the oldest images\' bytes', async () => {
    // ~3 MB per image: by the third turn the conversation is over NATS's 8 MB payload.
    const big = `data:image/png;base64,${PNG_BASE64}${'A'.repeat(3 * 1024 * 1024)}`;
    const turn = (text: string) => [{ role: 'user' as const, content: [{ type: 'input_text' as const, text }, { type: 'input_image' as const, image_url: big, detail: 'auto' as const }] }];
    let previous: string | undefined;
    for (const text of ['first', 'second', 'third']) {
      previous = (await alice.responses.create({ model: 'vllm/Qwen/Qwen2.5-7B-Instruct', input: turn(text), ...(previous && { previous_response_id: previous }) })).id;
    }
    const items = await alice.responses.inputItems.list(previous!, { order: 'asc', limit: 100 });
    const users = items.data.filter((item) => item.type === 'message' && item.role === 'user') as OpenAI.Responses.ResponseInputMessageItem[];
    expect(users.map((m) => m.content[0])).toEqual(['first', 'second', 'third'].map((text) => ({ type: 'input_text', text })));
    expect(users[0]!.content[1]).toEqual({ type: 'input_text', text: OMITTED_PART_TEXT });
    expect(users[2]!.content[1]).toMatchObject({ type: 'input_image', image_url: big });
    // The conversation goes on from the stored record.
    const next = await alice.responses.create({ model: 'vllm/Qwen/Qwen2.5-7B-Instruct', previous_response_id: previous!, input: 'fourth' });
    expect(next.status).toBe('completed');
  }, 60_000);
});

/** A Response as JSON has no undefined fields (the SDK adds `output_text` as a property). */
function stripUndefined<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

describe('errors in the SDK\'s classes', () => {
  it('bad request, unknown model, no key, a budget spent, a built-in tool on a local model', async () => {
    const missingInput = await alice.responses.create({ model: 'ollama/llama3.2:3b' }).catch((e: unknown) => e);
    expect(missingInput).toBeInstanceOf(OpenAI.BadRequestError);
    expect(missingInput).toMatchObject({ param: 'input', message: expect.stringContaining("Missing required parameter: 'input'") as unknown });
    const unknown = await alice.responses.create({ model: 'no-such-model', input: 'x' }).catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(OpenAI.NotFoundError);
    expect(unknown).toMatchObject({ code: 'model_not_found' });
    const noKey = sdk(stack.ingressUrl, 'unused', { defaultHeaders: { Authorization: null } });
    await expect(noKey.responses.create({ model: 'ollama/llama3.2:3b', input: 'x' })).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    await expect(noKey.responses.retrieve(`resp_${'1'.repeat(48)}`)).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    const broke = await sdk(stack.ingressUrl, keys.broke).responses.create({ model: 'gpt-4.1-mini', input: 'x' }).catch((e: unknown) => e);
    expect(broke).toBeInstanceOf(OpenAI.RateLimitError);
    expect(broke).toMatchObject({ code: 'budget_exceeded', message: expect.stringContaining("cloud token budget of key 'broke'") as unknown });
    for (const model of ['vllm/Qwen/Qwen2.5-7B-Instruct', 'ollama/llama3.2:3b', 'claude-haiku-4-5']) {
      const search = await alice.responses.create({ model, input: 'News?', tools: [{ type: 'web_search' }] }).catch((e: unknown) => e);
      expect(search).toBeInstanceOf(OpenAI.BadRequestError);
      expect(search).toMatchObject({ param: 'tools[0].type', message: expect.stringContaining("'web_search' is one of OpenAI's built-in tools, which only OpenAI runs") as unknown });
    }
    // OpenAI runs its own tools: the request passes through.
    expect((await alice.responses.create({ model: 'gpt-4.1-mini', input: 'News?', tools: [{ type: 'web_search' }] })).tools).toEqual([{ type: 'web_search' }]);
  });

  it('a backend failure before any content → 502 in OpenAI\'s shape; streamed after content → an error event, then response.failed', async () => {
    stack.sims.ollama.setFaults({ status: 500 });
    const failed = await alice.responses.create({ model: 'ollama/llama3.2:3b', input: 'x' }).catch((e: unknown) => e);
    stack.sims.ollama.setFaults({});
    expect(failed).toBeInstanceOf(OpenAI.InternalServerError);
    expect(failed).toMatchObject({ status: 502, code: 'backend_error' });
    stack.sims.vllm.setFaults({ dropAfterChunks: 3 });
    const events: string[] = [];
    const cut = await (async () => {
      for await (const event of await alice.responses.create({ model: 'vllm/Qwen/Qwen2.5-7B-Instruct', input: 'x', stream: true })) events.push(event.type);
    })().catch((e: unknown) => e);
    stack.sims.vllm.setFaults({});
    expect(cut).toBeInstanceOf(OpenAI.APIError);
    expect(events).toContain('response.output_text.delta');
    expect(events).not.toContain('response.completed');
  });
});

describe('bad input in OpenAI\'s error shape; the service keeps serving', () => {
  const post = (body: string, key = keys.alice) => fetch(`${stack.ingressUrl}/v1/responses`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body,
  });

  it.each<[string, string, number, string, string | null]>([
    ['malformed JSON', '{"model": "ollama/llama3.2:3b", "input": [', 400, 'invalid_json', null],
    ['an empty body', '', 400, 'invalid_json', null],
    ['input of the wrong type', '{"model":"ollama/llama3.2:3b","input":42}', 400, 'invalid_request', 'input'],
    ['a model that is a number', '{"model":5,"input":"x"}', 400, 'invalid_request', 'model'],
    ['temperature out of range', '{"model":"ollama/llama3.2:3b","input":"x","temperature":9}', 400, 'invalid_request', 'temperature'],
    ['an unknown input item type', '{"model":"ollama/llama3.2:3b","input":[{"type":"telepathy","thought":"x"}]}', 400, 'invalid_request', 'input[0].type'],
    ['a function_call without call_id', '{"model":"ollama/llama3.2:3b","input":[{"type":"function_call","name":"f","arguments":"{}"}]}', 400, 'invalid_request', 'input[0]'],
    ['a previous_response_id that is not one', '{"model":"ollama/llama3.2:3b","input":"x","previous_response_id":"resp_nope"}', 400, 'invalid_request', 'previous_response_id'],
  ])('%s → %i', async (_name, body, status, code, param) => {
    const res = await post(body);
    expect(res.status).toBe(status);
    const json = await res.json() as { error: { message: string; type: string; code: string; param: string | null } };
    expect(json.error).toMatchObject({ code, type: 'invalid_request_error' });
    if (param) expect(json.error.param).toContain(param);
    expect(json.error.message.length).toBeGreaterThan(5);
    expect((await alice.responses.create({ model: 'ollama/llama3.2:3b', input: 'still there?' })).status).toBe('completed');
  });

  it('a body over the limit → 413 body_too_large, and the next request is served', async () => {
    const answer = await postOversizedBody(`${stack.ingressUrl}/v1/responses`, { authorization: `Bearer ${keys.alice}` }, '{"model":"ollama/llama3.2:3b","input":"');
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.text)).toMatchObject({ error: { code: 'body_too_large', type: 'invalid_request_error' } });
    expect((await alice.responses.create({ model: 'ollama/llama3.2:3b', input: 'still there?' })).status).toBe('completed');
  });

  it('unknown stored-response routes and ids → 404 in OpenAI\'s shape', async () => {
    const headers = { authorization: `Bearer ${keys.alice}` };
    for (const path of ['/v1/responses/resp_x/cancel_everything', '/v1/responses/not-an-id', '/v1/responses/resp_a%2Eb/input_items']) {
      const res = await fetch(`${stack.ingressUrl}${path}`, { headers });
      expect(res.status, path).toBe(404);
      expect(await res.json()).toMatchObject({ error: { type: 'invalid_request_error' } });
    }
  });
});

describe('pass-through to OpenAI, byte for byte', () => {
  const raw = async (body: string) => {
    const res = await fetch(`${stack.ingressUrl}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${keys.alice}` }, body });
    return { status: res.status, contentType: res.headers.get('content-type'), bytes: Buffer.from(await res.arrayBuffer()) };
  };
  const lastResponsesCall = (): SimRequestRecord => stack.sims.openai.requests.filter((r) => r.path === '/v1/responses').at(-1)!;

  it('the request reaches OpenAI as the client wrote it (fields the gateway does not know included) and its answer reaches the client unchanged', async () => {
    const body = '{ "model":"gpt-4.1-mini", "input":[{"role":"user","content":[{"type":"input_text","text":"Hi"}]}],\n "instructions":"Be brief.", "metadata":{"trip":"oslo"}, "reasoning":{"effort":"low","summary":"auto"}, "include":["reasoning.encrypted_content"], "prompt_cache_key":"k1", "a_field_of_tomorrow":{"x":[1,2]} }';
    const whole = await raw(body);
    expect(whole.status).toBe(200);
    const call = lastResponsesCall();
    expect(call.rawBody!.toString('utf8')).toBe(body);
    expect(whole.bytes.equals(Buffer.concat(call.written))).toBe(true);

    const streamed = await raw(body.replace('"input"', '"stream":true, "input"'));
    expect(streamed.contentType).toMatch(/^text\/event-stream/);
    const streamCall = lastResponsesCall();
    expect(streamCall.rawBody!.toString('utf8')).toBe(body.replace('"input"', '"stream":true, "input"'));
    expect(streamed.bytes.equals(Buffer.concat(streamCall.written))).toBe(true);
    expect(streamed.bytes.toString()).toContain('event: response.completed');
  });

  it("an alias's model name is the only byte changed", async () => {
    const body = '{"model":"openai/gpt-4.1-mini","input":"Hi","store":false}';
    const answer = await raw(body);
    expect(answer.status).toBe(200);
    expect(lastResponsesCall().rawBody!.toString('utf8')).toBe('{"model":"gpt-4.1-mini","input":"Hi","store":false}');
    expect(answer.bytes.equals(Buffer.concat(lastResponsesCall().written))).toBe(true);
  });
});

describe('events', () => {
  it('inference.completed says dialect openai.responses, for answers and refusals', async () => {
    const ok = await alice.responses.create({ model: 'claude-haiku-4-5', input: 'Hello' }).withResponse();
    const bad = await fetch(`${stack.ingressUrl}/v1/responses`, { method: 'POST', headers: { authorization: `Bearer ${keys.alice}` }, body: '{"model":"x","input":7}' });
    const ids = [ok.response.headers.get('x-request-id')!, bad.headers.get('x-request-id')!];
    await using nc = await connectAs(stack.nats, 'scripts');
    const consumer = await jetstream(nc).consumers.get('INFERENCE');
    const events: Record<string, unknown>[] = [];
    for await (const m of await consumer.fetch({ max_messages: 2000, expires: 1000 })) events.push(m.json());
    const [answered, refused] = ids.map((id) => events.filter((e) => e['requestId'] === id));
    expect(answered).toEqual([expect.objectContaining({ dialect: 'openai.responses', operation: 'chat', status: 'ok', backend: 'anthropic', apiKey: 'alice', outputTokens: 8 })]);
    expect(refused).toEqual([expect.objectContaining({ dialect: 'openai.responses', status: 'error', httpStatus: 400, routeReason: 'rejected' })]);
  });
});

describe('stored responses outlive a restart, and expire', () => {
  let own: TestStack | undefined;
  afterAll(async () => { await own?.[Symbol.asyncDispose](); });

  it('a restarted stack (NATS and every service) still has them; a shorter TTL then expires them', async () => {
    own = await startTestStack({ tokens: 4, auth: true, inferenceYaml: '  responses: { ttlDays: 30 }\n  aliases:\n    fast: [ollama/llama3.2:3b]' });
    const s = own;
    const key = await (async () => {
      await using nc = await connectAs(s.nats, 'admin');
      return ((await nc.request('keys.create', JSON.stringify({ name: 'laptop' }), { timeout: 5000 })).json() as { key: string }).key;
    })();
    const client = sdk(s.ingressUrl, key);
    const waitServing = async (): Promise<void> => {
      for (let i = 0; i < 100; i++) {
        if ((await fetch(`${s.ingressUrl}/v1/models`, { headers: { authorization: `Bearer ${key}` } }).catch(() => undefined))?.status === 200) return;
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    await waitServing();
    const kept = await client.responses.create({ model: 'fast', input: 'Remember me' });

    const restart = async (): Promise<void> => {
      const running = s.services.filter((p) => p.proc.exitCode === null && p.proc.signalCode === null);
      for (const p of running) await p.stop();
      await s.nats.restart();
      for (const folder of ['worker-vllm', 'worker-ollama', 'worker-cloud', 'router', 'ingress']) await s.startService(folder);
      await waitServing();
    };
    await restart();
    expect((await client.responses.retrieve(kept.id)).output_text).toBe(simText(4));
    const continued = await client.responses.create({ model: 'fast', previous_response_id: kept.id, input: 'Still there?' });
    expect((lastBody(s.sims.ollama, '/api/chat')['messages'] as Body[]).map((m) => m['content'])).toEqual(['Remember me', simText(4), 'Still there?']);

    // A TTL of a few seconds (0.00005 days = 4.32 s), applied to the bucket at the next start.
    writeFileSync(s.configFile, readFileSync(s.configFile, 'utf8').replace('ttlDays: 30', 'ttlDays: 0.00005'));
    await restart();
    const brief = await client.responses.create({ model: 'fast', input: 'Soon gone' });
    let status = 200;
    for (let i = 0; i < 200 && status === 200; i++) {
      status = await client.responses.retrieve(brief.id).then(() => 200, (e: unknown) => (e as { status: number }).status);
      if (status === 200) await new Promise((r) => setTimeout(r, 100));
    }
    expect(status).toBe(404);
    await expect(client.responses.create({ model: 'fast', previous_response_id: brief.id, input: 'x' })).rejects.toBeInstanceOf(OpenAI.BadRequestError);
    // The bucket itself lets go of them (its max age is the TTL): the older ones too.
    await using nc = await connectAs(s.nats, 'router');
    const bucket = await new Kvm(nc).open('responses');
    expect((await bucket.status()).ttl).toBe(4320);
    let left = Infinity;
    for (let i = 0; i < 100 && left > 0; i++) {
      left = (await Promise.all([kept.id, continued.id, brief.id].map((id) => bucket.get(id)))).filter((e) => e?.operation === 'PUT').length;
      if (left > 0) await new Promise((r) => setTimeout(r, 100));
    }
    expect(left).toBe(0);
  }, 120_000);
});

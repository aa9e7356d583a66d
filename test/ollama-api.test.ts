import { jetstream } from '@nats-io/jetstream';
import { Ollama, type ChatResponse, type GenerateResponse, type Message, type Tool } from 'ollama';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { simText, type SimRequestRecord } from '@homelab/simulators';
import { connectAs, startTestStack, type TestStack } from '@homelab/testing';
import { postOversizedBody } from './helpers/oversized-body.ts';

/*
 * The Ollama API through the real stack (ingress, router, the three workers, nats-server, the
 * simulators), read by the official `ollama` npm client as Open WebUI's Ollama connection and
 * every Ollama tool would: every model of the lab (Ollama's, vLLM's, an alias, Claude, GPT) listed
 * and chatted with, Ollama's requests to Ollama passed through byte for byte, errors in Ollama's shape.
 */

let stack: TestStack;
let key: string;
let ollama: Ollama;

const OLLAMA_MODEL = 'llama3.2:3b';
const VLLM_MODEL = 'vllm/Qwen/Qwen2.5-7B-Instruct';
/** The five ways to every backend: Ollama's own model, vLLM's, an alias (vLLM first), Claude and GPT. */
const BACKENDS: [string, string, keyof TestStack['sims']][] = [
  ['an Ollama model', OLLAMA_MODEL, 'ollama'],
  ['a vLLM model', VLLM_MODEL, 'vllm'],
  ['an alias, tagged as Ollama clients send it', 'smart:latest', 'vllm'],
  ['Claude', 'claude-haiku-4-5', 'anthropic'],
  ['GPT', 'gpt-4.1-mini', 'openai'],
];
const hello: Message[] = [{ role: 'user', content: 'Hello there' }];
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==';
const weather: Tool = {
  type: 'function',
  function: { name: 'get_weather', description: 'The weather in a city', parameters: { type: 'object', required: ['city'], properties: { city: { type: 'string', description: 'The city' } } } },
};

async function admin(subject: string, body?: unknown): Promise<Record<string, unknown>> {
  await using nc = await connectAs(stack.nats, 'admin');
  const reply = await nc.request(subject, body === undefined ? undefined : JSON.stringify(body), { timeout: 5000 });
  expect(reply.headers?.get('Nats-Service-Error-Code')).toBeUndefined();
  return reply.json();
}

/** A key of the lab, once the ingress knows it (it watches the key bucket). */
async function createKey(body: Record<string, unknown>): Promise<string> {
  const created = await admin('keys.create', body);
  const made = created['key'] as string;
  for (let i = 0; i < 50; i++) {
    if ((await fetch(`${stack.ingressUrl}/api/version`, { headers: { authorization: `Bearer ${made}` } })).status === 200) return made;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('the key never became usable');
}

const clientFor = (apiKey?: string): Ollama => new Ollama({ host: stack.ingressUrl, ...(apiKey && { headers: { Authorization: `Bearer ${apiKey}` } }) });

/** A raw request, for the bytes: Ollama's clients send JSON as their language writes it. */
function post(path: string, body: string | Buffer, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${stack.ingressUrl}${path}`, { method: 'POST', body, headers: { 'content-type': 'application/json', authorization: `Bearer ${key}`, ...headers } });
}

/** The simulator's generation requests (to `path`) after a mark, to find the one a test made; not the workers' model discovery (GETs). */
function requestsSince(sim: { requests: SimRequestRecord[] }, mark: number, path?: string): SimRequestRecord[] {
  return sim.requests.slice(mark).filter((r) => r.method === 'POST' && (!path || r.path === path));
}

function writtenBy(record: SimRequestRecord): string {
  return Buffer.concat(record.written).toString('utf8');
}

beforeAll(async () => {
  // The lab's `ollama.keepAlive`: added to requests that do not say, never to those that do.
  stack = await startTestStack({ auth: true, tokens: 8, backends: { ollama: { keepAlive: '30m' } } });
  key = await createKey({ name: 'open-webui' });
  ollama = clientFor(key);
}, 60_000);
afterAll(async () => { await stack?.[Symbol.asyncDispose](); });

/** Every part of a streamed answer, as the client yields them. */
async function collect<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const parts: T[] = [];
  for await (const part of stream) parts.push(part);
  return parts;
}

/** What the client threw: its ResponseError (`error`, `status_code`) or the Error of an in-stream error line. */
async function failure(promise: Promise<unknown>): Promise<Error & { status_code?: number; error?: string }> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(Error);
  const error = err as Error & { status_code?: number; error?: string };
  // Never `[object Object]`: the client read Ollama's `{"error": "<text>"}`.
  expect(error.message).not.toContain('[object Object]');
  return error;
}

/** The last request body a simulator got since a mark, parsed. */
function lastBody(sim: keyof TestStack['sims'], mark: number, path?: string): Record<string, unknown> {
  const record = requestsSince(stack.sims[sim], mark, path).at(-1);
  expect(record, `no request to ${sim}${path ?? ''}`).toBeDefined();
  return record!.body as Record<string, unknown>;
}

/** The inference.completed event of one request. */
async function eventOf(requestId: string): Promise<Record<string, unknown>> {
  await using nc = await connectAs(stack.nats, 'scripts');
  for (let i = 0; i < 20; i++) {
    const consumer = await jetstream(nc).consumers.get('INFERENCE');
    const messages = await consumer.fetch({ max_messages: 10_000, expires: 1000 });
    for await (const m of messages) {
      const event = m.json<Record<string, unknown>>();
      if (event['requestId'] === requestId) return event;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no event for ${requestId}`);
}

describe('the ollama client sees every model of the lab', () => {
  it("list: Ollama's, vLLM's and cloud models and the aliases, as Ollama names them (image models are not chat models)", async () => {
    const { models } = await ollama.list();
    const names = models.map((m) => m.name);
    expect(names).toEqual(expect.arrayContaining([
      'llama3.2:3b', 'qwen2.5:32b', 'nomic-embed-text:latest', 'Qwen/Qwen2.5-7B-Instruct:latest', 'BAAI/bge-small-en-v1.5:latest',
      'gpt-4.1-mini:latest', 'text-embedding-3-small:latest', 'claude-haiku-4-5:latest', 'smart:latest', 'fast:latest', 'local:latest',
    ]));
    expect(models.every((m) => m.model === m.name)).toBe(true);
    // Ollama's models as the Ollama node lists them (its size, details, date); the others as the lab knows them.
    const llama = models.find((m) => m.name === OLLAMA_MODEL)!;
    expect(llama).toMatchObject({ size: 4_683_087_332, modified_at: '2025-09-30T10:00:00.000000000Z', details: { format: 'gguf', family: 'llama', quantization_level: 'Q4_K_M' } });
    expect(llama.digest).toMatch(/^[0-9a-f]{64}$/);
    expect(models.find((m) => m.name === 'smart:latest')!.details).toMatchObject({ parent_model: 'vllm/*' });
    expect(models.find((m) => m.name === 'Qwen/Qwen2.5-7B-Instruct:latest')!.details).toMatchObject({ family: 'qwen', parameter_size: '7B', format: '' });
  });

  it('show: details and capabilities of any model; an unknown one is Ollama\'s 404', async () => {
    const smart = await ollama.show({ model: 'smart:latest' });
    expect(smart).toMatchObject({ capabilities: ['completion'], details: { parent_model: 'vllm/*' } });
    expect(await ollama.show({ model: 'Qwen/Qwen2.5-7B-Instruct:latest' })).toMatchObject({ details: { family: 'qwen', parameter_size: '7B' }, model_info: { 'general.basename': 'Qwen2.5-7B-Instruct' } });
    expect((await ollama.show({ model: 'claude-haiku-4-5' })).capabilities).toEqual(['completion', 'tools', 'vision', 'thinking']);
    expect((await ollama.show({ model: 'nomic-embed-text' })).capabilities).toEqual(['embedding']);
    const unknown = await failure(ollama.show({ model: 'nope:latest' }));
    expect(unknown).toMatchObject({ name: 'ResponseError', status_code: 404, error: "model 'nope:latest' not found" });
    const nameless = await post('/api/show', '{}');
    expect(nameless.status).toBe(400);
    expect(await nameless.json()).toEqual({ error: 'model is required' });
    const empty = await post('/api/show', '');
    expect(await empty.json()).toEqual({ error: 'missing request body' });
    const broken = await post('/api/show', '{"model": ');
    expect(broken.status).toBe(400);
    expect(Object.keys(await broken.json() as object)).toEqual(['error']);
  });

  it("ps: the models in the lab's memory (Ollama's loaded ones and vLLM's), not cloud models or aliases", async () => {
    const { models } = await ollama.ps();
    const names = models.map((m) => m.name);
    expect(names).toEqual(expect.arrayContaining(['llama3.2:3b', 'Qwen/Qwen2.5-7B-Instruct:latest']));
    expect(names.some((n) => n.startsWith('gpt-') || n.startsWith('claude-') || n === 'smart:latest')).toBe(false);
    // Open WebUI parses `expires_at` as an ISO date. Ollama's own models expire as Ollama says (its keep_alive), vLLM's never.
    expect(models.every((m) => Number.isFinite(Date.parse(m.expires_at as unknown as string)))).toBe(true);
    const llama = models.find((m) => m.name === OLLAMA_MODEL)!;
    expect(Date.parse(llama.expires_at as unknown as string)).toBeLessThan(Date.now() + 3_600_000);
    expect(llama.size_vram).toBe(4_683_087_332);
    const qwen = models.find((m) => m.name === 'Qwen/Qwen2.5-7B-Instruct:latest')!;
    expect(Date.parse(qwen.expires_at as unknown as string)).toBeGreaterThan(Date.now() + 100 * 365 * 86_400_000);
  });

  it('version, and the probes at / (GET and HEAD) that find an Ollama server', async () => {
    expect(await ollama.version()).toEqual({ version: '0.12.3' });
    const root = await fetch(`${stack.ingressUrl}/`);
    expect(root.status).toBe(200);
    expect(await root.text()).toBe('Ollama is running');
    expect((await fetch(`${stack.ingressUrl}/`, { method: 'HEAD' })).status).toBe(200);
    const tags = await fetch(`${stack.ingressUrl}/api/tags`, { method: 'HEAD', headers: { authorization: `Bearer ${key}` } });
    expect(tags.status).toBe(200);
    expect(await tags.text()).toBe('');
  });

  it("a key sees only what it may use: in the list, in show, and when it asks", async () => {
    const kids = await createKey({ name: 'kids-tablet', models: ['fast', 'llama3.2:3b'] });
    const client = clientFor(kids);
    expect((await client.list()).models.map((m) => m.name).sort()).toEqual(['fast:latest', 'llama3.2:3b']);
    expect((await client.ps()).models.map((m) => m.name)).toEqual(['llama3.2:3b']);
    expect(await failure(client.show({ model: 'smart:latest' }))).toMatchObject({ status_code: 404 });
    expect(await failure(client.chat({ model: 'smart:latest', messages: hello }))).toMatchObject({ status_code: 403, error: expect.stringContaining("may not use the model 'smart'") as string });
    // `fast:latest`, as the list names it, is the alias `fast` the key may use.
    expect((await client.chat({ model: 'fast:latest', messages: hello })).message.content).toBe(simText(8));
    const local = await createKey({ name: 'private', localOnly: true });
    const listed = (await clientFor(local).list()).models.map((m) => m.name);
    expect(listed).toContain('llama3.2:3b');
    expect(listed.some((n) => n.startsWith('gpt-') || n.startsWith('claude-'))).toBe(false);
  });
});

describe('chat through every backend', () => {
  it.each(BACKENDS)('%s (%s): a whole answer', async (_name, model, sim) => {
    const mark = stack.sims[sim].requests.length;
    const answer = await ollama.chat({ model, messages: hello });
    expect(answer).toMatchObject({ model, message: { role: 'assistant', content: simText(8) }, done: true, done_reason: 'stop', eval_count: 8 });
    expect(answer.prompt_eval_count).toBeGreaterThan(0);
    expect(requestsSince(stack.sims[sim], mark).length).toBeGreaterThan(0);
  });

  it.each(BACKENDS)('%s (%s): streamed, NDJSON line by line', async (_name, model, sim) => {
    const mark = stack.sims[sim].requests.length;
    const parts = await collect(await ollama.chat({ model, messages: hello, stream: true }));
    expect(parts.map((p) => p.message.content).join('')).toBe(simText(8));
    expect(parts.length).toBeGreaterThanOrEqual(9);
    expect(parts.slice(0, -1).every((p) => !p.done)).toBe(true);
    expect(parts.at(-1)).toMatchObject({ model, done: true, done_reason: 'stop', eval_count: 8 });
    expect(parts.every((p) => p.model === model)).toBe(true);
    expect(requestsSince(stack.sims[sim], mark).length).toBeGreaterThan(0);
  });

  it.each(BACKENDS)('%s (%s): a tool call (streamed) and its result', async (_name, model, sim) => {
    const ask: Message = { role: 'user', content: 'Weather in Oslo?' };
    const parts = await collect(await ollama.chat({ model, messages: [ask], tools: [weather], stream: true }));
    const calls = parts.flatMap((p) => p.message.tool_calls ?? []);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.function).toMatchObject({ name: 'get_weather', arguments: { city: expect.any(String) as string } });
    const assistant: Message = { role: 'assistant', content: '', tool_calls: calls };
    const mark = stack.sims[sim].requests.length;
    const answer = await ollama.chat({ model, tools: [weather], messages: [ask, assistant, { role: 'tool', content: '{"temp": 4}', tool_name: 'get_weather' }] });
    expect(answer.message.content).toBe(simText(8));
    // The backend got the result in its own API's shape.
    const messages = lastBody(sim, mark)['messages'] as Record<string, unknown>[];
    if (sim === 'ollama') expect(messages.at(-1)).toEqual({ role: 'tool', content: '{"temp": 4}', tool_name: 'get_weather' });
    else if (sim === 'anthropic') expect(messages.at(-1)).toMatchObject({ role: 'user', content: [{ type: 'tool_result', content: '{"temp": 4}' }] });
    else {
      const call = (messages.at(-2)!['tool_calls'] as { id: string; function: { arguments: string } }[])[0]!;
      expect(JSON.parse(call.function.arguments)).toEqual(calls[0]!.function.arguments);
      expect(messages.at(-1)).toEqual({ role: 'tool', tool_call_id: call.id, content: '{"temp": 4}' });
    }
  });

  it.each(BACKENDS)('%s (%s): an image', async (_name, model, sim) => {
    const mark = stack.sims[sim].requests.length;
    // The client base64-encodes bytes itself.
    const answer = await ollama.chat({ model, messages: [{ role: 'user', content: 'What is this?', images: [Buffer.from(PNG, 'base64')] }] });
    expect(answer.message.content).toBe(simText(8));
    const sent = (lastBody(sim, mark)['messages'] as { content: unknown; images?: string[] }[]).at(-1)!;
    if (sim === 'ollama') expect(sent.images).toEqual([PNG]);
    else if (sim === 'anthropic') expect(sent.content).toContainEqual({ type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG } });
    else expect(sent.content).toContainEqual({ type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } });
  });

  it('think: Ollama thinks itself; Claude thinks through a thinking budget; vLLM and GPT get the reasoning effort', async () => {
    const own = await ollama.chat({ model: OLLAMA_MODEL, messages: hello, think: true });
    expect(own.message).toMatchObject({ thinking: 'Let me check the lab.', content: simText(8) });
    let mark = stack.sims.anthropic.requests.length;
    const claude = await collect(await ollama.chat({ model: 'claude-haiku-4-5', messages: hello, think: 'high', stream: true }));
    expect(claude.map((p) => p.message.thinking ?? '').join('')).toBe('Let me think about this request.');
    expect(claude.map((p) => p.message.content).join('')).toBe(simText(8));
    expect(lastBody('anthropic', mark)['thinking']).toEqual({ type: 'enabled', budget_tokens: 16384 });
    mark = stack.sims.vllm.requests.length;
    await ollama.chat({ model: VLLM_MODEL, messages: hello, think: 'low' });
    expect(lastBody('vllm', mark)).toMatchObject({ reasoning_effort: 'low' });
    mark = stack.sims.openai.requests.length;
    await ollama.chat({ model: 'gpt-4.1-mini', messages: hello, think: true });
    expect(lastBody('openai', mark)).toMatchObject({ reasoning_effort: 'medium' });
  });

  it('format (a JSON schema): the answer is an object of that schema; Claude is asked for it in its system prompt', async () => {
    const format = { type: 'object', properties: { city: { type: 'string' }, temp: { type: 'number' } }, required: ['city', 'temp'] };
    for (const model of [OLLAMA_MODEL, VLLM_MODEL, 'smart:latest', 'gpt-4.1-mini']) {
      const answer = await ollama.chat({ model, messages: hello, format });
      expect(JSON.parse(answer.message.content), model).toEqual({ city: 'sim', temp: 1 });
    }
    const mark = stack.sims.anthropic.requests.length;
    await ollama.chat({ model: 'claude-haiku-4-5', messages: hello, format });
    expect(lastBody('anthropic', mark)['system']).toContain(JSON.stringify(format));
  });

  it('options map onto each backend: num_predict, temperature, stop', async () => {
    const options = { num_predict: 3, temperature: 0.2, stop: ['###'] };
    let mark = stack.sims.vllm.requests.length;
    const short = await ollama.chat({ model: VLLM_MODEL, messages: hello, options });
    expect(short).toMatchObject({ message: { content: simText(3) }, done_reason: 'length', eval_count: 3 });
    expect(lastBody('vllm', mark)).toMatchObject({ max_tokens: 3, temperature: 0.2, stop: ['###'] });
    mark = stack.sims.anthropic.requests.length;
    await ollama.chat({ model: 'claude-haiku-4-5', messages: hello, options });
    expect(lastBody('anthropic', mark)).toMatchObject({ max_tokens: 3, temperature: 0.2, stop_sequences: ['###'] });
  });
});

describe("Ollama's own requests pass through unchanged", () => {
  // As Python's json.dumps writes it (Open WebUI), with fields the gateway does not know.
  const body = (fields: string) => `{"model": "llama3.2:3b", "messages": [{"role": "user", "content": "H\u00e9llo \\u00e9"}], ${fields}"options": {"temperature": 0.25, "num_ctx": 8192, "top_k": 7, "mirostat": 2, "stop": ["\\n\\n"]}, "x_future": {"nested": [1, 2.50, null]}}`;

  it('options, keep_alive, think and unknown fields reach Ollama byte for byte, and its answer the client', async () => {
    for (const stream of ['"stream": false, ', '', '"stream": true, ']) {
      const sent = body(`${stream}"keep_alive": "10m", "think": false, `);
      const mark = stack.sims.ollama.requests.length;
      const res = await post('/api/chat', sent);
      expect(res.status).toBe(200);
      const received = await res.text();
      const upstream = requestsSince(stack.sims.ollama, mark, '/api/chat');
      expect(upstream).toHaveLength(1);
      expect(upstream[0]!.rawBody!.toString('utf8')).toBe(sent);
      expect(received).toBe(writtenBy(upstream[0]!));
      expect(res.headers.get('content-type')).toBe(stream === '"stream": false, ' ? 'application/json' : 'application/x-ndjson');
    }
  });

  it('the same through the official client: what it sent is what Ollama got, what Ollama answered is what it read', async () => {
    const request = { model: OLLAMA_MODEL, messages: hello, options: { temperature: 0.25, num_ctx: 8192, mirostat: 2 }, keep_alive: '10m', think: false, format: 'json' };
    const mark = stack.sims.ollama.requests.length;
    const answer = await ollama.chat(request);
    const upstream = requestsSince(stack.sims.ollama, mark, '/api/chat')[0]!;
    // The client wrote JSON.stringify(request), after setting `stream: false` on it.
    expect(upstream.rawBody!.toString('utf8')).toBe(JSON.stringify(request));
    expect(JSON.parse(writtenBy(upstream))).toEqual(answer);
  });

  it("only the model changes for an alias, and the lab's keep_alive is added only where the client sent none", async () => {
    let mark = stack.sims.ollama.requests.length;
    const aliased = body('"keep_alive": -1, ').replace('"llama3.2:3b"', '"fast"');
    const res = await post('/api/chat', aliased);
    const upstream = requestsSince(stack.sims.ollama, mark, '/api/chat')[0]!;
    expect(upstream.rawBody!.toString('utf8')).toBe(aliased.replace('"fast"', '"llama3.2:3b"'));
    expect(await res.text()).toBe(writtenBy(upstream));

    mark = stack.sims.ollama.requests.length;
    const plain = body('"stream": false, ');
    await (await post('/api/chat', plain)).text();
    expect(requestsSince(stack.sims.ollama, mark, '/api/chat')[0]!.rawBody!.toString('utf8')).toBe(`{"keep_alive":"30m",${plain.slice(1)}`);
    mark = stack.sims.ollama.requests.length;
    await (await post('/api/chat', body('"stream": false, "keep_alive": null, '))).text();
    expect(requestsSince(stack.sims.ollama, mark, '/api/chat')[0]!.rawBody!.toString('utf8')).toBe(body('"stream": false, "keep_alive": "30m", '));
  });

  it('generate and embed pass through the same way', async () => {
    let mark = stack.sims.ollama.requests.length;
    const generate = '{"model":"llama3.2:3b","prompt":"def add(a, b):","suffix":"    return c","options":{"seed":42},"keep_alive":"5m","raw":false}';
    const answer = await (await post('/api/generate', generate)).text();
    const upstream = requestsSince(stack.sims.ollama, mark, '/api/generate')[0]!;
    expect(upstream.rawBody!.toString('utf8')).toBe(generate);
    expect(answer).toBe(writtenBy(upstream));
    mark = stack.sims.ollama.requests.length;
    const embed = '{"model": "nomic-embed-text:latest", "input": ["a", "b"], "truncate": false, "keep_alive": 0}';
    const vectors = await (await post('/api/embed', embed)).text();
    const embedded = requestsSince(stack.sims.ollama, mark, '/api/embed')[0]!;
    expect(embedded.rawBody!.toString('utf8')).toBe(embed);
    expect(vectors).toBe(writtenBy(embedded));
  });
});

describe('generate, embed and embeddings through every backend', () => {
  it("generate with a suffix: fill-in-the-middle on Ollama's model, an alias goes on to it; a clear 400 where the backend has none", async () => {
    const mark = stack.sims.ollama.requests.length;
    const middle = await ollama.generate({ model: OLLAMA_MODEL, prompt: 'def add(a, b):', suffix: '    return c' });
    expect(middle).toMatchObject({ response: simText(8), done: true });
    expect(lastBody('ollama', mark, '/api/generate')).toMatchObject({ prompt: 'def add(a, b):', suffix: '    return c' });
    const vllmMark = stack.sims.vllm.requests.length;
    // An alias goes on past a backend that cannot: `smart` is vLLM first, then Ollama's model, which answers (and names itself).
    const ollamaMark = stack.sims.ollama.requests.length;
    const viaAlias = await ollama.generate({ model: 'smart:latest', prompt: 'def add(a, b):', suffix: '    return c' });
    expect(viaAlias).toMatchObject({ model: 'qwen2.5:32b', response: simText(8), done: true });
    expect(lastBody('ollama', ollamaMark, '/api/generate')).toMatchObject({ model: 'qwen2.5:32b', suffix: '    return c' });
    for (const [model, backend] of [[VLLM_MODEL, 'vllm'], ['claude-haiku-4-5', 'anthropic']] as const) {
      const refused = await failure(ollama.generate({ model, prompt: 'def add(a, b):', suffix: '    return c' }));
      expect(refused).toMatchObject({ status_code: 400, error: `'suffix' needs fill-in-the-middle text completions, which ${backend} does not offer: ask for a model served by Ollama` });
    }
    // Refused before anything was sent.
    expect(requestsSince(stack.sims.vllm, vllmMark, '/v1/completions')).toEqual([]);
  });

  it.each(BACKENDS)('%s (%s): generate, whole and streamed', async (_name, model) => {
    const whole = await ollama.generate({ model, prompt: 'Why is the sky blue?', system: 'Be brief.' });
    expect(whole).toMatchObject({ model, response: simText(8), done: true, done_reason: 'stop' });
    const parts: GenerateResponse[] = await collect(await ollama.generate({ model, prompt: 'Why is the sky blue?', stream: true }));
    expect(parts.map((p) => p.response).join('')).toBe(simText(8));
    expect(parts.at(-1)).toMatchObject({ done: true });
  });

  it('embed and the older embeddings: Ollama\'s, vLLM\'s (by its listed name) and OpenAI\'s embedding models', async () => {
    for (const [model, sim] of [['nomic-embed-text', 'ollama'], ['BAAI/bge-small-en-v1.5:latest', 'vllm'], ['text-embedding-3-small', 'openai']] as const) {
      const mark = stack.sims[sim].requests.length;
      const embedded = await ollama.embed({ model, input: ['first text', 'second text'] });
      expect(embedded.embeddings, model).toHaveLength(2);
      expect(embedded.embeddings.every((v) => v.length > 0 && v.every((n) => typeof n === 'number'))).toBe(true);
      const single = await ollama.embeddings({ model, prompt: 'first text' });
      expect(single.embedding).toEqual(embedded.embeddings[0]);
      expect(requestsSince(stack.sims[sim], mark).length).toBe(2);
    }
  });
});

describe('errors the ollama client reads', () => {
  it('a bad request: 400 with what is wrong', async () => {
    const bad = await failure(ollama.chat({ model: 'fast', messages: 'hi' } as never));
    expect(bad).toMatchObject({ name: 'ResponseError', status_code: 400 });
    expect(bad.error).toContain('messages');
    const think = await failure(ollama.chat({ model: 'fast', messages: hello, think: 'very' as never }));
    expect(think).toMatchObject({ status_code: 400, error: expect.stringContaining('think') as string });
  });

  it("an unknown model: 404; Ollama's own 404 for a model it lacks, as Ollama words it", async () => {
    expect(await failure(ollama.chat({ model: 'no-such-model', messages: hello }))).toMatchObject({
      status_code: 404, error: "The model 'no-such-model' does not exist or no backend of this lab serves it now",
    });
    expect(await failure(ollama.chat({ model: 'ollama/absent:1b', messages: hello }))).toMatchObject({ status_code: 404, error: "model 'absent:1b' not found" });
    expect(await failure(ollama.embeddings({ model: 'ollama/absent:1b', prompt: 'x' }))).toMatchObject({ status_code: 404, error: 'model "absent:1b" not found, try pulling it first' });
  });

  it('no key, or a wrong one: 401', async () => {
    expect(await failure(clientFor().list())).toMatchObject({ status_code: 401, error: expect.stringContaining("didn't provide an API key") as string });
    expect(await failure(clientFor('hlk_wrong').chat({ model: 'fast', messages: hello }))).toMatchObject({ status_code: 401, error: expect.stringContaining('Incorrect API key') as string });
  });

  it("a spent cloud budget: 429 saying so; the key's local models still answer", async () => {
    const client = clientFor(await createKey({ name: 'budgeted', dailyTokens: 10 }));
    await client.chat({ model: 'claude-haiku-4-5', messages: hello });
    let refused: Error & { status_code?: number; error?: string } | undefined;
    for (let i = 0; i < 50 && !refused; i++) {
      refused = await client.chat({ model: 'claude-haiku-4-5', messages: hello }).then(() => undefined, (e: unknown) => e as Error);
      if (!refused) await new Promise((r) => setTimeout(r, 100));
    }
    expect(refused).toMatchObject({ name: 'ResponseError', status_code: 429, error: "the daily cloud token budget of key 'budgeted' (10 tokens) is used up; local models are still served if the key allows them" });
    expect((await client.chat({ model: OLLAMA_MODEL, messages: hello })).message.content).toBe(simText(8));
  });

  it("Ollama's runner failing: its 500 and its words; mid-stream, its error line ends the stream", async () => {
    stack.sims.ollama.setFaults({ errorLineAfterChunks: 3 });
    try {
      const parts: ChatResponse[] = [];
      const cut = await failure((async () => { for await (const part of await ollama.chat({ model: OLLAMA_MODEL, messages: hello, stream: true })) parts.push(part); })());
      expect(cut.message).toBe('llama runner process has terminated: exit status 2');
      expect(parts.map((p) => p.message.content).join('')).toBe(simText(3));
      const whole = await failure(ollama.chat({ model: OLLAMA_MODEL, messages: hello }));
      expect(whole).toMatchObject({ status_code: 500, error: 'llama runner process has terminated: exit status 2' });
    } finally {
      stack.sims.ollama.setFaults({});
    }
  });

  it.each([['Ollama', OLLAMA_MODEL, 'ollama', '/api/chat'], ['vLLM', VLLM_MODEL, 'vllm', '/v1/chat/completions']] as const)(
    'a client that aborts its stream (%s) cancels the backend request', async (_name, model, sim, path) => {
      stack.sims[sim].setOptions({ tokens: 400, tokenIntervalMs: 20 });
      try {
        const mark = stack.sims[sim].requests.length;
        const stream = await ollama.chat({ model, messages: hello, stream: true });
        const first = await stream[Symbol.asyncIterator]().next();
        expect(first.value).toMatchObject({ done: false });
        stream.abort();
        const upstream = () => requestsSince(stack.sims[sim], mark, path)[0];
        await expect.poll(() => upstream()?.aborted, { timeout: 5000 }).toBe(true);
        expect(upstream()!.completed).toBe(false);
      } finally {
        stack.sims[sim].setOptions({ tokens: 8, tokenIntervalMs: 0 });
      }
    },
  );

  it('model management: 403 saying to manage models on the Ollama node', async () => {
    const refusals = await Promise.all([
      failure(ollama.pull({ model: 'llama3.3' })), failure(ollama.push({ model: 'me/llama' })), failure(ollama.create({ model: 'mine', from: 'llama3.2:3b' })),
      failure(ollama.copy({ source: 'llama3.2:3b', destination: 'mine' })), failure(ollama.delete({ model: 'llama3.2:3b' })),
    ]);
    expect(refusals.map((r) => r.status_code)).toEqual([403, 403, 403, 403, 403]);
    expect(refusals.map((r) => /^model management \((\w+)\)/.exec(r.error ?? '')?.[1])).toEqual(['pull', 'push', 'create', 'copy', 'delete']);
    expect(refusals[0]!.error).toContain('manage models on the Ollama node itself');
    for (const method of ['HEAD', 'POST']) {
      const blob = await fetch(`${stack.ingressUrl}/api/blobs/sha256:${'a'.repeat(64)}`, { method, headers: { authorization: `Bearer ${key}` } });
      expect(blob.status).toBe(403);
    }
  });
});

describe("bad input, answered in Ollama's shape while the gateway keeps serving", () => {
  it.each<[string, number, string, string]>([
    ['malformed JSON', 400, '/api/chat', '{"model": "fast", "messages": ['],
    ['an empty body', 400, '/api/chat', ''],
    ['a JSON array', 400, '/api/generate', '[1, 2]'],
    ['messages of the wrong type', 400, '/api/chat', '{"model": "fast", "messages": "hi"}'],
    ['stream of the wrong type', 400, '/api/chat', '{"model": "fast", "messages": [], "stream": "yes"}'],
    ['options that are a list', 400, '/api/generate', '{"model": "fast", "prompt": "x", "options": [1]}'],
    ['images that are not a list', 400, '/api/generate', '{"model": "fast", "prompt": "x", "images": "abc"}'],
    ['an embed input of numbers', 400, '/api/embed', '{"model": "nomic-embed-text", "input": [1, 2]}'],
    ['a model that is a number', 400, '/api/embeddings', '{"model": 5, "prompt": "x"}'],
    ['an image that is not base64', 400, '/api/chat', '{"model": "smart", "stream": false, "messages": [{"role": "user", "content": "x", "images": ["%%%"]}]}'],
    ['an unknown route', 404, '/api/nothing', '{}'],
  ])('%s → %i {"error": …}', async (_name, status, path, body) => {
    const res = await post(path, body);
    expect(res.status).toBe(status);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const json = await res.json() as Record<string, unknown>;
    expect(Object.keys(json)).toEqual(['error']);
    expect(typeof json['error']).toBe('string');
    expect(res.headers.get('x-request-id')).toBeTruthy();
  });

  it('a body over the limit → 413, and the next request is served', async () => {
    const answer = await postOversizedBody(`${stack.ingressUrl}/api/chat`, { authorization: `Bearer ${key}` }, '{"model":"fast","messages":[{"role":"user","content":"');
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.text)).toEqual({ error: `request body is larger than ${4 * 1024 * 1024} bytes` });
    expect((await ollama.chat({ model: 'fast', messages: hello })).message.content).toBe(simText(8));
  });
});

describe('events and the requests Ollama answers without a model run', () => {
  it('inference.completed says the client spoke ollama.chat, ollama.generate, ollama.embed', async () => {
    const cases: [string, string, string, string][] = [
      ['/api/chat', '{"model": "smart:latest", "messages": [{"role": "user", "content": "Hi"}], "stream": false}', 'ollama.chat', 'chat'],
      ['/api/generate', '{"model": "claude-haiku-4-5", "prompt": "Hi"}', 'ollama.generate', 'text_completion'],
      ['/api/embed', '{"model": "nomic-embed-text", "input": "Hi"}', 'ollama.embed', 'embeddings'],
    ];
    for (const [path, body, dialect, operation] of cases) {
      const res = await post(path, body);
      await res.text();
      const event = await eventOf(res.headers.get('x-request-id')!);
      expect(event).toMatchObject({ dialect, operation, status: 'ok', apiKey: 'open-webui' });
    }
    const smart = await post('/api/chat', cases[0]![1]);
    await smart.text();
    expect(await eventOf(smart.headers.get('x-request-id')!)).toMatchObject({ requestedModel: 'smart:latest', backend: 'vllm', routeReason: 'alias:smart > vllm', outputTokens: 8 });
  });

  it('load, unload and an empty embed for a model not on Ollama: answered by the worker, nothing sent to the backend', async () => {
    const mark = stack.sims.vllm.requests.length;
    const unload = await post('/api/generate', '{"model": "smart:latest", "keep_alive": 0, "prompt": ""}');
    expect(unload.status).toBe(200);
    expect(await unload.json()).toMatchObject({ model: 'smart:latest', response: '', done: true, done_reason: 'unload' });
    const load = await ollama.chat({ model: VLLM_MODEL, messages: [] });
    expect(load).toMatchObject({ message: { role: 'assistant', content: '' }, done: true, done_reason: 'load' });
    expect(await ollama.embed({ model: 'BAAI/bge-small-en-v1.5:latest', input: [] })).toEqual({ model: 'BAAI/bge-small-en-v1.5:latest', embeddings: [] });
    expect(await ollama.embeddings({ model: 'text-embedding-3-small', prompt: '' })).toEqual({ embedding: [] });
    expect(requestsSince(stack.sims.vllm, mark)).toEqual([]);
  });
});

describe('the same API on NATS, for scripts', () => {
  it('inference.ollama.chat answers a script in Ollama\'s shape, its errors too', async () => {
    await using nc = await connectAs(stack.nats, 'scripts');
    const reply = await nc.request('inference.ollama.chat', JSON.stringify({ model: 'fast:latest', messages: hello, stream: false }), { timeout: 10_000 });
    expect(reply.headers?.get('Homelab-Dialect')).toBe('ollama.chat');
    // Passed through to Ollama: its answer names its model, as Ollama wrote it.
    expect(reply.json()).toMatchObject({ model: 'llama3.2:3b', message: { content: simText(8) }, done: true });
    const refused = await nc.request('inference.ollama.chat', JSON.stringify({ model: 'fast', messages: 'hi' }), { timeout: 10_000 });
    expect(refused.headers?.get('Nats-Service-Error-Code')).toBe('400');
    expect(Object.keys(refused.json<object>())).toEqual(['error']);
  });
});

describe("Open WebUI's Ollama connection, call for call", () => {
  // Open WebUI (backend/open_webui/routers/ollama.py) sends `Authorization: Bearer <key>` and JSON as
  // Python's json.dumps writes it; it adds `:latest` to names without a tag; it reads `expires_at`
  // of /api/ps with datetime.fromisoformat; its unload button sends keep_alive 0 with an empty prompt.
  it('version, tags, ps, show, a streamed chat, embed, and the unload request', async () => {
    const get = async (path: string) => (await fetch(`${stack.ingressUrl}${path}`, { headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' } })).json() as Promise<Record<string, unknown>>;
    const { version } = await get('/api/version');
    expect(String(version).replace(/^v|-.*/g, '').split('.').map(Number).every(Number.isInteger)).toBe(true);

    const tags = (await get('/api/tags'))['models'] as { name: string; model: string }[];
    const ps = (await get('/api/ps'))['models'] as { name: string; expires_at: string }[];
    const listed = new Set(tags.map((m) => m.model));
    expect(ps.every((m) => listed.has(m.name) && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(m.expires_at))).toBe(true);

    for (const model of ['smart:latest', 'llama3.2:3b', 'claude-haiku-4-5:latest']) {
      expect(listed.has(model)).toBe(true);
      const show = await post('/api/show', JSON.stringify({ model }).replace(':"', ': "'));
      expect(show.status).toBe(200);
      expect((await show.json() as { capabilities: string[] }).capabilities).toContain('completion');

      const chat = await post('/api/chat', `{"model": "${model}", "messages": [{"role": "user", "content": "Hi"}], "stream": true, "options": {"temperature": 0.7, "num_ctx": 4096}}`);
      expect(chat.headers.get('content-type')).toBe('application/x-ndjson');
      const lines = (await chat.text()).split('\n').filter(Boolean).map((line) => JSON.parse(line) as { message: { content: string }; done: boolean });
      expect(lines.map((l) => l.message.content).join('')).toBe(simText(8));
      expect(lines.at(-1)!.done).toBe(true);
    }

    const embed = await post('/api/embed', '{"input": ["A text to index"], "model": "nomic-embed-text:latest"}');
    expect(((await embed.json()) as { embeddings: number[][] }).embeddings).toHaveLength(1);

    for (const model of ['smart:latest', 'llama3.2:3b']) {
      const unload = await post('/api/generate', `{"model": "${model}", "keep_alive": 0, "prompt": ""}`);
      expect(await unload.json()).toMatchObject({ model, done: true, done_reason: 'unload' });
    }
    // Ollama itself unloaded its model.
    expect(stack.sims.ollama.loadedModels()).not.toContain('llama3.2:3b');
  });
});

import OpenAI from 'openai';
import { jetstream } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { simText, type SimRequestRecord, type Simulator } from '@homelab/simulators';
import { connectAs, startTestStack, type TestStack } from '@homelab/testing';
import { postOversizedBody } from './helpers/oversized-body.ts';

/*
 * OpenAI's legacy completions (`POST /v1/completions`, editor autocompletion with
 * fill-in-the-middle) through the real stack, read with the official `openai` SDK: passed through
 * to vLLM and OpenAI, translated to Ollama's `/api/generate` (with `suffix`), refused for Anthropic;
 * and `n > 1` in chat completions, which vLLM and OpenAI answer and the others refuse by name.
 */

let stack: TestStack;
let key: string;
let client: OpenAI;

async function createKey(name: string, extra: Record<string, unknown> = {}): Promise<string> {
  await using nc = await connectAs(stack.nats, 'admin');
  const made = (await nc.request('keys.create', JSON.stringify({ name, ...extra }), { timeout: 5000 })).json() as { key: string };
  for (let i = 0; i < 100; i++) {
    if ((await fetch(`${stack.ingressUrl}/v1/models`, { headers: { authorization: `Bearer ${made.key}` } })).status === 200) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return made.key;
}

const sdk = (apiKey: string, options: Partial<ConstructorParameters<typeof OpenAI>[0]> = {}) =>
  new OpenAI({ baseURL: `${stack.ingressUrl}/v1`, apiKey, maxRetries: 0, ...options });

beforeAll(async () => {
  stack = await startTestStack({ tokens: 8, auth: true });
  key = await createKey('editor');
  client = sdk(key);
}, 90_000);
afterAll(async () => { await stack?.[Symbol.asyncDispose](); });

const VLLM = 'Qwen/Qwen2.5-7B-Instruct';
const FIM = { prompt: 'def fib(n):\n    ', suffix: '\n    return a' };

function last(sim: Simulator, path: string): SimRequestRecord {
  const record = sim.requests.filter((r) => r.path === path).at(-1);
  expect(record, `a request on ${path}`).toBeDefined();
  return record!;
}

async function collect(stream: AsyncIterable<OpenAI.Completions.Completion>): Promise<{ text: string; chunks: number; usage?: OpenAI.CompletionUsage }> {
  let text = '';
  let chunks = 0;
  let usage: OpenAI.CompletionUsage | undefined;
  for await (const chunk of stream) {
    chunks++;
    text += chunk.choices[0]?.text ?? '';
    if (chunk.usage) usage = chunk.usage;
  }
  return { text, chunks, ...(usage && { usage }) };
}

describe('legacy completions on each backend', () => {
  it('vLLM: passed through, plain and streamed; the prompt list, echo and logprobs are vLLM\'s', async () => {
    const { data, response } = await client.completions.create({ model: VLLM, prompt: 'def fib(', max_tokens: 8, temperature: 0 }).withResponse();
    expect(data).toMatchObject({ object: 'text_completion', model: VLLM, choices: [{ index: 0, text: simText(8), finish_reason: 'stop' }], usage: { completion_tokens: 8 } });
    expect(response.headers.get('x-homelab-backend')).toBe('vllm');
    expect(last(stack.sims.vllm, '/v1/completions').body).toEqual({ model: VLLM, prompt: 'def fib(', max_tokens: 8, temperature: 0 });

    const streamed = await collect(await client.completions.create({ model: VLLM, prompt: 'def fib(', stream: true, stream_options: { include_usage: true } }));
    expect(streamed.text).toBe(simText(8));
    expect(streamed.chunks).toBeGreaterThan(1);
    expect(streamed.usage).toMatchObject({ completion_tokens: 8 });

    const many = await client.completions.create({ model: VLLM, prompt: ['a', 'b'], n: 2, echo: true, logprobs: 1 });
    expect(many.choices.map((c) => c.index)).toEqual([0, 1, 2, 3]);
    expect(many.choices[0]!.text.startsWith('a')).toBe(true);
    expect(many.choices[0]!.logprobs?.tokens?.length).toBeGreaterThan(0);
  });

  it("vLLM refuses suffix: a 400 the SDK reads, naming suffix and saying what to do", async () => {
    const err = await client.completions.create({ model: VLLM, ...FIM }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err).toMatchObject({ status: 400, param: 'suffix', code: 'unsupported' });
    expect((err as Error).message).toContain("'suffix' needs fill-in-the-middle text completions, which vllm does not offer: ask for a model served by Ollama (vllm: suffix is not currently supported)");
    // Through an alias whose next backend has it (`local`: vLLM, then Ollama), Ollama answers.
    const { data, response } = await client.completions.create({ model: 'local', ...FIM, max_tokens: 8 }).withResponse();
    expect(response.headers.get('x-homelab-backend')).toBe('ollama');
    expect(response.headers.get('x-homelab-route-reason')).toMatch(/vllm unsupported > ollama/);
    expect(data.choices[0]!.text.length).toBeGreaterThan(0);
  });

  it('OpenAI: passed through, suffix included; a chat-only model is OpenAI\'s own 404', async () => {
    const fim = await client.completions.create({ model: 'gpt-4.1-mini', ...FIM, max_tokens: 16 });
    expect(fim.choices[0]!.text).toBe(simText(8));
    expect(last(stack.sims.openai, '/v1/completions').body).toEqual({ model: 'gpt-4.1-mini', ...FIM, max_tokens: 16 });
    const streamed = await collect(await client.completions.create({ model: 'gpt-4.1-mini', prompt: 'Once', stream: true }));
    expect(streamed.text).toBe(simText(8));
    expect(streamed.usage).toBeUndefined();
  });

  it('Ollama: /api/generate with suffix through the model\'s template; without suffix the prompt is continued raw', async () => {
    const fim = await client.completions.create({ model: 'ollama/llama3.2:3b', ...FIM, max_tokens: 20, temperature: 0.2, stop: ['\n\n'] });
    expect(fim).toMatchObject({ object: 'text_completion', model: 'llama3.2:3b', choices: [{ text: simText(8), finish_reason: 'stop' }], usage: { completion_tokens: 8 } });
    const generate = last(stack.sims.ollama, '/api/generate').body as Record<string, unknown>;
    expect(generate).toMatchObject({ model: 'llama3.2:3b', ...FIM, stream: false, options: { num_predict: 20, temperature: 0.2, stop: ['\n\n'] } });
    expect(generate).not.toHaveProperty('raw');

    const streamed = await collect(await client.completions.create({ model: 'ollama/llama3.2:3b', prompt: 'Once upon a time', stream: true, stream_options: { include_usage: true } }));
    expect(streamed.text).toBe(simText(8));
    expect(streamed.usage).toMatchObject({ completion_tokens: 8 });
    expect(last(stack.sims.ollama, '/api/generate').body).toMatchObject({ prompt: 'Once upon a time', raw: true, stream: true });
  });

  it('Ollama: what /api/generate cannot do is a 400 naming the field', async () => {
    const cases: [Partial<OpenAI.CompletionCreateParamsNonStreaming>, string][] = [[{ echo: true }, 'echo'], [{ logprobs: 2 }, 'logprobs'], [{ n: 2 }, 'n'], [{ prompt: ['a', 'b'] }, 'prompt']];
    for (const [extra, param] of cases) {
      const err = await client.completions.create({ model: 'ollama/llama3.2:3b', prompt: 'x', ...extra }).catch((e: unknown) => e);
      expect(err, param).toBeInstanceOf(OpenAI.BadRequestError);
      expect(err, param).toMatchObject({ param });
    }
  });

  it('Anthropic: a clear 400 naming the backend; nothing reaches Anthropic', async () => {
    const before = stack.sims.anthropic.requests.length;
    for (const stream of [false, true]) {
      const err = await client.completions.create({ model: 'claude-haiku-4-5', prompt: 'x', stream }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.BadRequestError);
      expect((err as Error).message).toContain('anthropic cannot serve text completions (legacy completions, fill-in-the-middle): use a model of another backend');
    }
    expect(stack.sims.anthropic.requests.slice(before).filter((r) => r.path === '/v1/messages')).toHaveLength(0);
  });
});

describe('pass-through, byte for byte', () => {
  const raw = async (body: string) => {
    const res = await fetch(`${stack.ingressUrl}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body });
    return { status: res.status, bytes: Buffer.from(await res.arrayBuffer()) };
  };

  it.each([['vllm', VLLM, '/v1/completions'], ['openai', 'gpt-4.1-mini', '/v1/completions']] as const)('%s: the request as written (unknown fields too), the answer as the backend wrote it, plain and streamed', async (name, model, path) => {
    const sim = stack.sims[name];
    for (const body of [
      `{"model":"${model}", "prompt":["def a(", "def b("], "max_tokens":5, "seed":7, "min_p":0.05, "a_field_of_tomorrow":{"x":1}}`,
      `{"model":"${model}", "prompt":"def a(", "stream":true, "stream_options":{"include_usage":true}, "min_p":0.05}`,
    ]) {
      const answer = await raw(body);
      expect(answer.status).toBe(200);
      const call = last(sim, path);
      expect(call.rawBody!.toString('utf8')).toBe(body);
      expect(answer.bytes.equals(Buffer.concat(call.written))).toBe(true);
    }
  });
});

describe('n > 1 in chat completions', () => {
  const hello = [{ role: 'user' as const, content: 'Hello' }];

  it.each([['vllm', VLLM], ['openai', 'gpt-4.1-mini']] as const)('%s: passed on, n choices back, plain and streamed', async (name, model) => {
    const whole = await client.chat.completions.create({ model, messages: hello, n: 3 });
    expect(whole.choices.map((c) => [c.index, c.message.content])).toEqual([0, 1, 2].map((i) => [i, simText(8)]));
    expect(last(stack.sims[name], '/v1/chat/completions').body).toMatchObject({ n: 3 });
    const texts = ['', ''];
    for await (const chunk of await client.chat.completions.create({ model, messages: hello, n: 2, stream: true })) {
      for (const choice of chunk.choices) texts[choice.index] += choice.delta.content ?? '';
    }
    expect(texts).toEqual([simText(8), simText(8)]);
  });

  it.each([['ollama/llama3.2:3b', 'Ollama returns one choice per request: n must be 1'], ['claude-haiku-4-5', 'anthropic returns one choice: n must be 1']])('%s: a 400 naming the backend, param n', async (model, message) => {
    for (const stream of [false, true]) {
      const err = await client.chat.completions.create({ model, messages: hello, n: 2, stream }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.BadRequestError);
      expect(err).toMatchObject({ param: 'n', message: expect.stringContaining(message) as unknown });
    }
    // n: 1 is every backend's default.
    expect((await client.chat.completions.create({ model, messages: hello, n: 1 })).choices).toHaveLength(1);
  });
});

describe("errors in the SDK's classes", () => {
  it('bad request, unknown model, no key, a budget spent', async () => {
    // @ts-expect-error: no prompt, on purpose
    const noPrompt = await client.completions.create({ model: VLLM }).catch((e: unknown) => e);
    expect(noPrompt).toBeInstanceOf(OpenAI.BadRequestError);
    expect(noPrompt).toMatchObject({ param: 'prompt' });
    await expect(client.completions.create({ model: 'no-such-model', prompt: 'x' })).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(sdk('unused', { defaultHeaders: { Authorization: null } }).completions.create({ model: VLLM, prompt: 'x' })).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    await expect(sdk('hlk_not-a-key').completions.create({ model: VLLM, prompt: 'x' })).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    const broke = sdk(await createKey('broke', { dailyTokens: 0 }));
    const spent = await broke.completions.create({ model: 'gpt-4.1-mini', prompt: 'x' }).catch((e: unknown) => e);
    expect(spent).toBeInstanceOf(OpenAI.RateLimitError);
    expect(spent).toMatchObject({ code: 'budget_exceeded' });
    // The budget counts cloud tokens only: the local model still answers.
    expect((await broke.completions.create({ model: VLLM, prompt: 'x' })).choices[0]!.text).toBe(simText(8));
  });
});

describe("bad input in OpenAI's error shape; the service keeps serving", () => {
  const post = (body: string) => fetch(`${stack.ingressUrl}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body });

  it.each<[string, string, string, string | null]>([
    ['malformed JSON', '{"model":"Qwen/Qwen2.5-7B-Instruct","prompt":"x', 'invalid_json', null],
    ['a prompt of the wrong type', '{"model":"Qwen/Qwen2.5-7B-Instruct","prompt":42}', 'invalid_request', 'prompt'],
    ['a prompt list mixing strings and numbers', '{"model":"Qwen/Qwen2.5-7B-Instruct","prompt":["a",1]}', 'invalid_request', 'prompt'],
    ['max_tokens that is not a number', '{"model":"Qwen/Qwen2.5-7B-Instruct","prompt":"x","max_tokens":"lots"}', 'invalid_request', 'max_tokens'],
    ['a suffix that is not a string', '{"model":"ollama/llama3.2:3b","prompt":"x","suffix":7}', 'invalid_request', 'suffix'],
  ])('%s → 400', async (_name, body, code, param) => {
    const res = await post(body);
    expect(res.status).toBe(400);
    const json = await res.json() as { error: { code: string; type: string; param: string | null; message: string } };
    expect(json.error).toMatchObject({ code, type: 'invalid_request_error' });
    if (param) expect(json.error.param).toContain(param);
    expect((await client.completions.create({ model: VLLM, prompt: 'still there?' })).choices).toHaveLength(1);
  });

  it('a body over the limit → 413, and the next request is served', async () => {
    const answer = await postOversizedBody(`${stack.ingressUrl}/v1/completions`, { authorization: `Bearer ${key}` }, '{"model":"x","prompt":"');
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.text)).toMatchObject({ error: { code: 'body_too_large' } });
    expect((await client.completions.create({ model: VLLM, prompt: 'still there?' })).choices).toHaveLength(1);
  });
});

describe('events', () => {
  it('inference.completed says dialect openai.completions and operation text_completion', async () => {
    const ids: string[] = [];
    for (const model of [VLLM, 'ollama/llama3.2:3b', 'gpt-4.1-mini']) {
      const { response } = await client.completions.create({ model, prompt: 'x' }).withResponse();
      ids.push(response.headers.get('x-request-id')!);
    }
    await using nc = await connectAs(stack.nats, 'scripts');
    const consumer = await jetstream(nc).consumers.get('INFERENCE');
    const events: Record<string, unknown>[] = [];
    for await (const m of await consumer.fetch({ max_messages: 2000, expires: 1000 })) events.push(m.json());
    const mine = ids.map((id) => events.filter((e) => e['requestId'] === id));
    expect(mine.map((e) => e.length)).toEqual([1, 1, 1]);
    expect(mine.map((e) => e[0])).toEqual(['vllm', 'ollama', 'openai'].map((backend) => expect.objectContaining({
      dialect: 'openai.completions', operation: 'text_completion', backend, status: 'ok', apiKey: 'editor', outputTokens: 8,
    })));
  });
});

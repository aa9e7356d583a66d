import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import OpenAI from 'openai';
import { jetstream } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { simText } from '@homelab/simulators';
import { connectAs, REPO_ROOT, startTestStack, type TestStack } from '@homelab/testing';
import { postOversizedBody } from './helpers/oversized-body.ts';

const run = promisify(execFile);
let stack: TestStack;
let client: OpenAI;

beforeAll(async () => {
  stack = await startTestStack({ tokens: 8 });
  client = new OpenAI({ baseURL: `${stack.ingressUrl}/v1`, apiKey: 'unused-by-the-lab', maxRetries: 0 });
}, 60_000);
afterAll(async () => { await stack?.[Symbol.asyncDispose](); });

const hello = [{ role: 'user' as const, content: 'Hello there' }];

describe('OpenAI SDK against the ingress', () => {
  it('answers a chat completion through an alias, with routing headers', async () => {
    const { data, response } = await client.chat.completions.create({ model: 'fast', messages: hello }).withResponse();
    expect(data.object).toBe('chat.completion');
    expect(data.choices[0]!.message.content).toBe(simText(8));
    expect(data.usage).toMatchObject({ completion_tokens: 8 });
    expect(response.headers.get('x-homelab-backend')).toBe('ollama');
    expect(response.headers.get('x-homelab-model')).toBe('llama3.2:3b');
    expect(response.headers.get('x-homelab-route-reason')).toBe('alias:fast > ollama');
    expect(response.headers.get('x-request-id')).toMatch(/^req_/);
    expect(Number(response.headers.get('x-homelab-overhead-ms'))).toBeGreaterThanOrEqual(0);
    // The simulator got the translated Ollama request.
    const last = stack.sims.ollama.requests.filter((r) => r.path === '/api/chat').at(-1)!;
    expect(last.body).toMatchObject({ model: 'llama3.2:3b', stream: false, messages: [{ role: 'user', content: 'Hello there' }] });
  });

  it('streams chunk by chunk with usage, ending with [DONE]', async () => {
    const stream = await client.chat.completions.create({ model: 'vllm/Qwen/Qwen2.5-7B-Instruct', messages: hello, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let chunks = 0;
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      chunks++;
      text += chunk.choices[0]?.delta.content ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe(simText(8));
    expect(chunks).toBeGreaterThanOrEqual(10);
    expect(usage).toMatchObject({ completion_tokens: 8 });
    // Upstream, the worker always asks vLLM for usage.
    const upstream = stack.sims.vllm.requests.filter((r) => r.path === '/v1/chat/completions').at(-1)!;
    expect(upstream.body).toMatchObject({ model: 'Qwen/Qwen2.5-7B-Instruct', stream: true, stream_options: { include_usage: true } });
  });

  it('leaves out the usage chunk when the client did not ask for it', async () => {
    const res = await fetch(`${stack.ingressUrl}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'ollama/llama3.2:3b', messages: hello, stream: true }) });
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(res.headers.get('x-accel-buffering')).toBe('no');
    const events = (await res.text()).split('\n\n').filter(Boolean);
    expect(events.at(-1)).toBe('data: [DONE]');
    const parsed = events.slice(0, -1).map((e) => JSON.parse(e.slice(6)) as OpenAI.ChatCompletionChunk);
    expect(parsed.every((c) => c.choices.length === 1)).toBe(true);
    expect(parsed.map((c) => c.choices[0]!.delta.content ?? '').join('')).toBe(simText(8));
  });

  it('round-trips a tool call (streamed, split over chunks) and its result', async () => {
    const tools: OpenAI.ChatCompletionTool[] = [{ type: 'function', function: { name: 'get_weather', description: 'Weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }];
    const stream = await client.chat.completions.create({ model: 'gpt-4.1-mini', messages: [{ role: 'user', content: 'Weather in Oslo?' }], tools, stream: true });
    let name = '';
    let args = '';
    let id = '';
    let argChunks = 0;
    let finish: string | null | undefined;
    for await (const chunk of stream) {
      const call = chunk.choices[0]?.delta.tool_calls?.[0];
      if (call?.id) id = call.id;
      if (call?.function?.name) name = call.function.name;
      if (call?.function?.arguments) { args += call.function.arguments; argChunks++; }
      finish ??= chunk.choices[0]?.finish_reason;
    }
    expect(name).toBe('get_weather');
    expect(argChunks).toBeGreaterThanOrEqual(2);
    expect(JSON.parse(args)).toHaveProperty('city');
    expect(finish).toBe('tool_calls');
    const answer = await client.chat.completions.create({
      model: 'claude-haiku-4-5', tools,
      messages: [
        { role: 'user', content: 'Weather in Oslo?' },
        { role: 'assistant', content: null, tool_calls: [{ id, type: 'function', function: { name, arguments: args } }] },
        { role: 'tool', tool_call_id: id, content: '{"temp": 4}' },
      ],
    });
    expect(answer.choices[0]!.message.content).toBe(simText(8));
    // Anthropic got the tool result as a tool_result block with the same id.
    const sent = stack.sims.anthropic.requests.at(-1)!.body as { messages: { role: string; content: { type: string; tool_use_id?: string }[] }[] };
    expect(sent.messages.at(-1)!.content[0]).toMatchObject({ type: 'tool_result', tool_use_id: id });
  });

  it('JSON mode returns a JSON object', async () => {
    const res = await client.chat.completions.create({ model: 'smart', messages: hello, response_format: { type: 'json_object' } });
    expect(() => JSON.parse(res.choices[0]!.message.content!)).not.toThrow();
    expect(res.model).toBe('Qwen/Qwen2.5-7B-Instruct');
  });

  it('creates embeddings (OpenAI and Ollama backends)', async () => {
    const cloud = await client.embeddings.create({ model: 'text-embedding-3-small', input: ['a', 'b'] });
    expect(cloud.data).toHaveLength(2);
    expect(cloud.data[0]!.embedding.length).toBeGreaterThan(0);
    const local = await client.embeddings.create({ model: 'nomic-embed-text', input: 'hello' });
    expect(local.data).toHaveLength(1);
    expect(local.data[0]!.embedding.every((n) => typeof n === 'number')).toBe(true);
  });

  it('lists models: discovered local, configured cloud, aliases; and retrieves one', async () => {
    const ids = new Map<string, string>();
    for await (const m of client.models.list()) ids.set(m.id, m.owned_by);
    expect(ids.get('Qwen/Qwen2.5-7B-Instruct')).toBe('vllm');
    expect(ids.get('llama3.2:3b')).toBe('ollama');
    expect(ids.get('gpt-4.1-mini')).toBe('openai');
    expect(ids.get('claude-haiku-4-5')).toBe('anthropic');
    expect(ids.get('smart')).toBe('vllm');
    expect((await client.models.retrieve('fast')).owned_by).toBe('ollama');
    await expect(client.models.retrieve('no-such-model')).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('maps bad requests to the SDK error classes', async () => {
    // @ts-expect-error: missing messages on purpose
    await expect(client.chat.completions.create({ model: 'fast' })).rejects.toBeInstanceOf(OpenAI.BadRequestError);
    await expect(client.chat.completions.create({ model: 'no-such-model', messages: hello })).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    const err = await client.chat.completions.create({ model: 'fast', messages: [{ role: 'wizard' as 'user', content: 'x' }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('messages[0].role');
    expect((err as Error).message).toContain("messages[0].role: expected one of 'system', 'developer', 'user', 'assistant', 'tool', got 'wizard'");
  });
});

describe('bad input over HTTP', () => {
  const post = (body: string | Buffer, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
    fetch(`${stack.ingressUrl}/v1/chat/completions`, { method: 'POST', headers, body });

  it.each<[string, string, number, string]>([
    ['malformed JSON', '{"model": "fast", "messages": [', 400, 'invalid_json'],
    ['an empty body', '', 400, 'invalid_json'],
    ['a JSON array', '[1,2]', 400, 'invalid_request'],
    ['messages of the wrong type', '{"model":"fast","messages":"hi"}', 400, 'invalid_request'],
    ['an empty messages list', '{"model":"fast","messages":[]}', 400, 'invalid_request'],
    ['temperature out of range', '{"model":"fast","messages":[{"role":"user","content":"x"}],"temperature":7}', 400, 'invalid_request'],
    ['a model that is a number', '{"model":5,"messages":[{"role":"user","content":"x"}]}', 400, 'invalid_request'],
    ['an unknown model', '{"model":"no-such-model","messages":[{"role":"user","content":"x"}]}', 404, 'model_not_found'],
    ['a cloud model the API does not know', '{"model":"gpt-nope","messages":[{"role":"user","content":"x"}]}', 404, 'model_not_found'],
    ['an unknown provider model', '{"model":"ollama/absent","messages":[{"role":"user","content":"x"}]}', 404, 'model_not_found'],
  ])('%s → %i in OpenAI error shape', async (_name, body, status, code) => {
    const res = await post(body);
    expect(res.status).toBe(status);
    expect(res.headers.get('x-request-id')).toBeTruthy();
    const json = await res.json() as { error: { message: string; type: string; code: string; param: unknown } };
    expect(json.error.code).toBe(code);
    expect(typeof json.error.message).toBe('string');
    expect(json.error).toHaveProperty('param');
    expect(json.error).toHaveProperty('type');
  });

  it('names the field, what was expected and what came; a trailing slash on /v1/models is the list', async () => {
    const res = await post('{"model":"fast","messages":[{"role":"user","content":"x"}],"temperature":"hot"}');
    expect(res.status).toBe(400);
    expect((await res.json() as { error: { message: string; param: string } }).error).toMatchObject({ message: 'temperature: expected a number, got string "hot"', param: 'temperature' });
    const slash = await fetch(`${stack.ingressUrl}/v1/models/`);
    expect(slash.status).toBe(200);
    expect((await slash.json() as { object: string }).object).toBe('list');
  });

  it('a body over the limit → 413', async () => {
    // The ingress refuses on the declared length alone: send the headers, read the answer, never the 5 MiB.
    const answer = await postOversizedBody(`${stack.ingressUrl}/v1/chat/completions`, {}, '{"model":"fast","messages":[');
    expect(answer.status).toBe(413);
    expect((JSON.parse(answer.text) as { error: { code: string } }).error.code).toBe('body_too_large');
    // And the ingress keeps serving.
    expect((await fetch(`${stack.ingressUrl}/healthz`)).status).toBe(200);
  });

  it('unknown routes → 404 in OpenAI shape; health endpoints answer', async () => {
    const res = await fetch(`${stack.ingressUrl}/v1/nothing`);
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: { code: 'not_found' } });
    expect((await fetch(`${stack.ingressUrl}/healthz`)).status).toBe(200);
    const ready = await fetch(`${stack.ingressUrl}/readyz`);
    expect(await ready.json()).toMatchObject({ status: 'ready', nats: true, router: true });
  });

  it('echoes a valid x-request-id and replaces an invalid one', async () => {
    const ok = await fetch(`${stack.ingressUrl}/v1/models`, { headers: { 'x-request-id': 'my-id-123' } });
    expect(ok.headers.get('x-request-id')).toBe('my-id-123');
    const bad = await fetch(`${stack.ingressUrl}/v1/models`, { headers: { 'x-request-id': 'evil\tid with spaces' } });
    expect(bad.headers.get('x-request-id')).toMatch(/^req_/);
  });

  it('a backend that fails → 502/503 with its reason; the gateway keeps serving', async () => {
    stack.sims.vllm.setFaults({ status: 500 });
    const res = await post(JSON.stringify({ model: 'vllm/Qwen/Qwen2.5-7B-Instruct', messages: hello }));
    expect(res.status).toBe(502);
    expect(await res.json()).toMatchObject({ error: { code: 'backend_error' } });
    stack.sims.vllm.setFaults({ status: 503 });
    const unavailable = await post(JSON.stringify({ model: 'vllm/Qwen/Qwen2.5-7B-Instruct', messages: hello }));
    expect(unavailable.status).toBe(503);
    stack.sims.vllm.setFaults({});
    const after = await post(JSON.stringify({ model: 'vllm/Qwen/Qwen2.5-7B-Instruct', messages: hello }));
    expect(after.status).toBe(200);
  });

  it('429 from a cloud API comes back as 429 with Retry-After', async () => {
    stack.sims.openai.setFaults({ status: 429, retryAfterSeconds: 7 });
    const res = await post(JSON.stringify({ model: 'gpt-4.1-mini', messages: hello }));
    stack.sims.openai.setFaults({});
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('7');
  });

  it('falls back to the next candidate when the first fails before any content', async () => {
    stack.sims.vllm.setFaults({ status: 503 });
    const res = await post(JSON.stringify({ model: 'smart', messages: hello }));
    stack.sims.vllm.setFaults({});
    expect(res.status).toBe(200);
    expect(res.headers.get('x-homelab-backend')).toBe('ollama');
    // Two tries on vLLM (routing.retry.attemptsPerBackend), then Ollama.
    expect(res.headers.get('x-homelab-attempts')).toBe('3');
    expect(res.headers.get('x-homelab-route-reason')).toBe('alias:smart > vllm backend_unavailable > vllm backend_unavailable > ollama');
  });
});

describe('cancellation and events', () => {
  it('a client that disconnects mid-stream aborts the upstream request', async () => {
    stack.sims.vllm.setOptions({ tokens: 200, tokenIntervalMs: 20 });
    const before = stack.sims.vllm.requests.length;
    const controller = new AbortController();
    const res = await fetch(`${stack.ingressUrl}/v1/chat/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, signal: controller.signal,
      body: JSON.stringify({ model: 'vllm/Qwen/Qwen2.5-7B-Instruct', messages: hello, stream: true }),
    });
    const reader = res.body!.getReader();
    await reader.read();
    controller.abort();
    const upstream = () => stack.sims.vllm.requests.slice(before).find((r) => r.path === '/v1/chat/completions');
    for (let i = 0; i < 50 && !upstream()?.aborted; i++) await new Promise((r) => setTimeout(r, 20));
    stack.sims.vllm.setOptions({ tokens: 8, tokenIntervalMs: 0 });
    expect(upstream()?.aborted).toBe(true);
    expect(upstream()?.completed).toBe(false);
  });

  it('emits one inference.completed event per request, with tokens and routing', async () => {
    const { response } = await client.chat.completions.create({ model: 'fast', messages: hello }).withResponse();
    const requestId = response.headers.get('x-request-id')!;
    await using nc = await connectAs(stack.nats, 'scripts');
    const consumer = await jetstream(nc).consumers.get('INFERENCE');
    const events: Record<string, unknown>[] = [];
    const messages = await consumer.fetch({ max_messages: 1000, expires: 1000 });
    for await (const m of messages) events.push(m.json());
    const mine = events.filter((e) => e['requestId'] === requestId);
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({ status: 'ok', backend: 'ollama', model: 'llama3.2:3b', requestedModel: 'fast', attempts: 1, outputTokens: 8, routeReason: 'alias:fast > ollama' });
    expect(mine[0]!['overheadMs']).toBeGreaterThanOrEqual(0);
    const failures = events.filter((e) => e['status'] === 'error');
    expect(failures.length).toBeGreaterThan(0);
    expect(failures.every((e) => typeof e['errorType'] === 'string')).toBe(true);
  });
});

describe('the NATS API for scripts', () => {
  const script = join(REPO_ROOT, 'test', 'fixtures', 'chat-over-nats.ts');
  /** The script runs as the `scripts` user, with its password, as any script in the lab does. */
  const asScripts = (): { env: NodeJS.ProcessEnv } => ({ env: { ...process.env, NATS_USER: 'scripts', NATS_PASSWORD: stack.nats.passwords.scripts } });

  it('a plain Node script gets a chat.completion by request/reply', async () => {
    const { stdout } = await run(process.execPath, [script, stack.nats.url, 'fast'], asScripts());
    const out = JSON.parse(stdout) as { error: string | null; body: { object: string; choices: { message: { content: string } }[] } };
    expect(out.error).toBeNull();
    expect(out.body.object).toBe('chat.completion');
    expect(out.body.choices[0]!.message.content).toBe(simText(8));
  });

  it('streams chunks in order on the reply subject, ending with a terminal message', async () => {
    const { stdout } = await run(process.execPath, [script, stack.nats.url, 'claude-haiku-4-5', 'stream'], asScripts());
    const out = JSON.parse(stdout) as { chunks: { choices: { delta: { content?: string } }[] }[]; end: string };
    expect(out.end).toBe('end');
    expect(out.chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe(simText(8));
  });

  it('errors carry the micro-service error headers and an OpenAI error body', async () => {
    const { stdout } = await run(process.execPath, [script, stack.nats.url, 'no-such-model'], asScripts());
    const out = JSON.parse(stdout) as { error: string; body: { error: { code: string } } };
    expect(out.error).toBe('404');
    expect(out.body.error.code).toBe('model_not_found');
  });
});

import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ChatChunk, ChatRequest } from '@homelab/dialects';
import { simText, startOllamaSimulator, startSimServer, type OllamaSimulator, type Simulator } from '@homelab/simulators';
import { completeInternal, streamInternal, type InternalStreamStats } from '../internal.ts';
import {
  answerText, backendCall, chat, collectChunks, contentOf, envelopeFor, gatewayError, internalCall, reasoningOf, runWorkerRequest,
} from '../testkit.ts';
import type { Backend } from '../types.ts';
import { createOllamaBackend } from './index.ts';

const weatherTool = {
  type: 'function' as const,
  function: {
    name: 'get_current_weather',
    description: 'Get the current weather for a location',
    parameters: { type: 'object', properties: { location: { type: 'string' }, days: { type: 'integer' } }, required: ['location'] },
  },
};

const HELLO: ChatRequest['messages'] = [{ role: 'user', content: 'Hello lab' }];
const request = (fields: Partial<ChatRequest> & Record<string, unknown> = {}) => chat({ messages: HELLO, ...fields });
const ollamaAt = (url: string, keepAlive?: string): Backend => createOllamaBackend({ url, connectTimeoutMs: 2000, ...(keepAlive !== undefined && { keepAlive }) });

/** One Ollama NDJSON line of `/api/chat`. */
function line(fields: Record<string, unknown>): string {
  return `${JSON.stringify({ model: 'llama3.2', created_at: '2025-10-01T12:00:00Z', ...fields })}\n`;
}

describe('Ollama stream decoding over the wire', () => {
  let server: Simulator | undefined;
  afterAll(() => server?.close());

  it('joins lines split across network reads, multi-byte characters included, then fails on a malformed line', async () => {
    const bytes = Buffer.from(line({ message: { role: 'assistant', content: 'café ☕' }, done: false }) + '\n' + '{"model":"llama3.2","message":\n');
    const at = bytes.indexOf('é') + 1; // inside the two bytes of é
    server = await startSimServer({}, async (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      for (const part of [bytes.subarray(0, 5), bytes.subarray(5, at), bytes.subarray(at, at + 3), bytes.subarray(at + 3)]) {
        await new Promise<void>((resolve) => res.write(part, () => resolve()));
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      res.end();
    });
    const received: ChatChunk[] = [];
    const err = await gatewayError(collectChunks(streamInternal(ollamaAt(server.url), request(), internalCall('llama3.2')), received));
    expect(err).toMatchObject({ code: 'backend_error', message: 'ollama sent a malformed stream line' });
    // The first line is whole or absent (a read holding both lines is failed whole), never cut.
    expect(['', 'café ☕']).toContain(contentOf(received));
  });

  it("reads the model's load time from the final line (load_duration, in ns)", async () => {
    await server?.close();
    server = await startSimServer({}, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.write(line({ message: { role: 'assistant', content: 'The' }, done: false }));
      res.end(line({ message: { role: 'assistant', content: '' }, done: true, done_reason: 'stop', load_duration: 1_234_400_000, prompt_eval_count: 3, eval_count: 1 }));
    });
    const stats: InternalStreamStats = {};
    const chunks = await collectChunks(streamInternal(ollamaAt(server.url), request(), internalCall('llama3.2'), stats));
    expect(contentOf(chunks)).toBe('The');
    expect(stats.loadMs).toBe(1234);
  });
});

describe('Ollama backend against the simulator', () => {
  let sim: OllamaSimulator;
  let backend: Backend;

  beforeAll(async () => {
    sim = await startOllamaSimulator({ models: ['llama3.2', 'qwen3:8b', 'all-minilm'], loaded: ['llama3.2', 'all-minilm'], tokens: 5 });
    backend = ollamaAt(`${sim.url}/`, '10m');
  });
  afterAll(async () => {
    await backend.close();
    await sim.close();
  });
  beforeEach(() => {
    sim.setFaults({});
    sim.setOptions({ tokens: 5, tokenIntervalMs: 0 });
  });

  it('answers a whole chat; the body carries the options and the default keep_alive', async () => {
    const completion = await completeInternal(backend, request({ max_tokens: 100, temperature: 0.2 }), internalCall('llama3.2'));
    expect(completion.object).toBe('chat.completion');
    expect(completion.model).toBe('llama3.2');
    expect(completion.choices[0]).toMatchObject({ finish_reason: 'stop', message: { role: 'assistant', content: simText(5) } });
    expect(completion.usage).toEqual({ prompt_tokens: 3, completion_tokens: 5, total_tokens: 8 });
    const record = sim.requests.at(-1)!;
    expect(record).toMatchObject({ method: 'POST', path: '/api/chat', completed: true });
    expect(record.body).toEqual({ model: 'llama3.2', messages: HELLO, stream: false, options: { num_predict: 100, temperature: 0.2 }, keep_alive: '10m' });
  });

  it("a request's own keep_alive wins over the backend's default", async () => {
    await completeInternal(backend, request({ keep_alive: -1 }), internalCall('llama3.2'));
    expect(sim.requests.at(-1)!.body).toMatchObject({ keep_alive: -1 });
  });

  it('streams chunks and ends with usage', async () => {
    const chunks = await collectChunks(streamInternal(backend, request(), internalCall('llama3.2')));
    expect(chunks[0]!.choices[0]!.delta).toEqual({ role: 'assistant', content: 'The' });
    expect(contentOf(chunks)).toBe(simText(5));
    expect(chunks).toHaveLength(5 + 2);
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe('stop');
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage: { prompt_tokens: 3, completion_tokens: 5, total_tokens: 8 } });
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
    expect(sim.requests.at(-1)!.body).toMatchObject({ stream: true, keep_alive: '10m' });
  });

  it('streams a tool call and answers one whole', async () => {
    const chunks = await collectChunks(streamInternal(backend, request({ tools: [weatherTool] }), internalCall('llama3.2')));
    const calls = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(calls).toEqual([{ index: 0, id: expect.stringMatching(/^call_/), type: 'function', function: { name: 'get_current_weather', arguments: '{"location":"sim","days":1}' } }]);
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe('tool_calls');
    expect((sim.requests.at(-1)!.body as { tools: unknown }).tools).toEqual([weatherTool]);

    const completion = await completeInternal(backend, request({ tools: [weatherTool] }), internalCall('llama3.2'));
    expect(completion.choices[0]!.finish_reason).toBe('tool_calls');
    expect(completion.choices[0]!.message.tool_calls).toEqual([{ id: expect.stringMatching(/^call_/), type: 'function', function: { name: 'get_current_weather', arguments: '{"location":"sim","days":1}' } }]);
  });

  it('answers JSON for response_format, stops at max_tokens and streams thinking', async () => {
    const schema = { type: 'object', properties: { age: { type: 'integer' }, available: { type: 'boolean' } }, required: ['age', 'available'] };
    const structured = await collectChunks(streamInternal(backend, request({ response_format: { type: 'json_schema', json_schema: { name: 'p', schema } } }), internalCall('llama3.2')));
    expect(JSON.parse(contentOf(structured))).toEqual({ age: 1, available: true });
    expect((sim.requests.at(-1)!.body as { format: unknown }).format).toEqual(schema);

    const jsonMode = await completeInternal(backend, request({ response_format: { type: 'json_object' } }), internalCall('llama3.2'));
    expect(JSON.parse(jsonMode.choices[0]!.message.content!)).toEqual({ answer: 'The lab answers' });
    expect((sim.requests.at(-1)!.body as { format: unknown }).format).toBe('json');

    const cut = await collectChunks(streamInternal(backend, request({ max_completion_tokens: 2 }), internalCall('llama3.2')));
    expect(contentOf(cut)).toBe('The lab');
    expect(cut.at(-2)!.choices[0]!.finish_reason).toBe('length');

    const thinking = await collectChunks(streamInternal(backend, request({ think: true }), internalCall('qwen3:8b')));
    expect(reasoningOf(thinking)).toBe('Let me check the lab.');
    expect(contentOf(thinking)).toBe(simText(5));
    const whole = await completeInternal(backend, request({ think: true }), internalCall('qwen3:8b'));
    expect(whole.choices[0]!.message).toMatchObject({ content: simText(5), reasoning_content: 'Let me check the lab.' });
  });

  it('embeds text through the internal embeddings form (/api/embed)', async () => {
    const result = await completeInternal(backend, { form: 'embeddings', request: { model: 'alias', input: ['Why is the sky blue?', 'hi'] } }, internalCall('all-minilm'));
    expect(result.object).toBe('list');
    expect(result.model).toBe('all-minilm');
    expect(result.data.map((d) => d.index)).toEqual([0, 1]);
    expect(result.data[0]!.embedding).toHaveLength(8);
    expect(Math.hypot(...result.data[0]!.embedding)).toBeCloseTo(1, 6);
    expect(result.usage).toEqual({ prompt_tokens: 5 + 1, total_tokens: 6 });
    expect(sim.requests.at(-1)).toMatchObject({ path: '/api/embed', body: { model: 'all-minilm', input: ['Why is the sky blue?', 'hi'], keep_alive: '10m' } });

    const sized = await completeInternal(backend, { form: 'embeddings', request: { model: 'alias', input: 'x', dimensions: 4 } }, internalCall('all-minilm'));
    expect(sized.data[0]!.embedding).toHaveLength(4);
  });

  it('lists models with the loaded flag from /api/ps, and what Ollama says of each (size, digest, details, expiry)', async () => {
    const models = await backend.listModels(new AbortController().signal);
    const created = Math.floor(Date.parse('2025-09-30T10:00:00Z') / 1000);
    expect(models).toEqual([
      { id: 'llama3.2:latest', created, loaded: true, facts: expect.any(Object) as object },
      { id: 'qwen3:8b', created, loaded: expect.any(Boolean), facts: expect.any(Object) as object },
      { id: 'all-minilm:latest', created, loaded: true, facts: expect.any(Object) as object },
    ]);
    expect(models[1]!.loaded).toBe(sim.loadedModels().includes('qwen3:8b'));
    const [tags, ps] = await Promise.all(['/api/tags', '/api/ps'].map(async (path) => (await (await fetch(`${sim.url}${path}`)).json() as { models: Record<string, unknown>[] }).models));
    const listed = tags!.find((m) => m['name'] === 'llama3.2:latest')!;
    const running = ps!.find((m) => m['name'] === 'llama3.2:latest')!;
    expect(models[0]!.facts).toEqual({
      size: listed['size'], digest: listed['digest'], details: listed['details'], modified_at: '2025-09-30T10:00:00.000000000Z',
      expires_at: expect.any(String) as string, size_vram: running['size_vram'], context_length: running['context_length'],
    });
    // The simulator's expiry is computed at each /api/ps: the same kind of value, not the same instant.
    expect(Number.isFinite(Date.parse(models[0]!.facts!['expires_at'] as string))).toBe(true);
  });

  describe('pass-through bytes (send)', () => {
    it("an Ollama client's bytes reach /api/chat as sent, and the NDJSON comes back as Ollama wrote it", async () => {
      const body = new TextEncoder().encode('{ "model": "llama3.2",\n "messages": [ { "role": "user", "content": "Hello lab" } ], "options": { "seed": 7 } }');
      const answer = await backend.send(backendCall('ollama.chat', body, { stream: true }));
      expect(answer.contentType).toBe('application/x-ndjson');
      const lines = (await answerText(answer)).split('\n').filter(Boolean).map((l) => JSON.parse(l) as { message: { content: string }; done: boolean; created_at?: string });
      expect(lines).toHaveLength(6);
      expect(lines.map((l) => l.message.content).join('')).toBe(simText(5));
      expect(lines.at(-1)).toMatchObject({ done: true, done_reason: 'stop', created_at: expect.any(String) });
      const record = sim.requests.at(-1)!;
      expect(record).toMatchObject({ path: '/api/chat', completed: true });
      expect(record.headers['content-length']).toBe(String(body.length));
      expect(record.body).toEqual(JSON.parse(new TextDecoder().decode(body)));
    });

    it('each Ollama dialect goes to its own path', async () => {
      const embedded = JSON.parse(await answerText(await backend.send(backendCall('ollama.embed', { model: 'all-minilm', input: 'hi' })))) as { embeddings: number[][] };
      expect(embedded.embeddings).toHaveLength(1);
      expect(sim.requests.at(-1)!.path).toBe('/api/embed');
      const generated = JSON.parse(await answerText(await backend.send(backendCall('ollama.generate', { model: 'llama3.2', prompt: 'def fib(', stream: false })))) as { response: string; done: boolean };
      expect(generated.done).toBe(true);
      expect(sim.requests.at(-1)!.path).toBe('/api/generate');
      const legacy = JSON.parse(await answerText(await backend.send(backendCall('ollama.embeddings', { model: 'all-minilm', prompt: 'hi' })))) as { embedding: number[] };
      expect(legacy.embedding.length).toBeGreaterThan(0);
      expect(sim.requests.at(-1)!.path).toBe('/api/embeddings');
    });

    it('a dialect Ollama does not speak → invalid_request, nothing sent', async () => {
      const before = sim.requests.length;
      const err = await gatewayError(() => backend.send(backendCall('openai.chat', { model: 'llama3.2', messages: HELLO })));
      expect(err).toMatchObject({ code: 'invalid_request', message: 'ollama does not speak openai.chat' });
      expect(sim.requests.length).toBe(before);
    });
  });

  describe('errors', () => {
    it('maps an unknown model to model_not_found', async () => {
      const err = await gatewayError(completeInternal(backend, request(), internalCall('mistral')));
      expect(err).toMatchObject({ code: 'model_not_found', message: "ollama: model 'mistral' not found" });
      expect((await gatewayError(collectChunks(streamInternal(backend, request(), internalCall('mistral'))))).code).toBe('model_not_found');
      expect((await gatewayError(completeInternal(backend, { form: 'embeddings', request: { model: 'nomic', input: 'x' } }, internalCall('nomic')))).code).toBe('model_not_found');
    });

    it('maps 500, 503, 400 and 429 with Retry-After', async () => {
      sim.setFaults({ status: 500 });
      const e500 = await gatewayError(collectChunks(streamInternal(backend, request(), internalCall('llama3.2'))));
      expect(e500).toMatchObject({ code: 'backend_error', retryable: true, message: 'ollama failed with 500: llama runner process has terminated: exit status 2' });

      sim.setFaults({ status: 503 });
      expect(await gatewayError(completeInternal(backend, request(), internalCall('llama3.2')))).toMatchObject({ code: 'backend_unavailable', retryable: true, message: expect.stringContaining('server busy') });

      sim.setFaults({ status: 400 });
      expect(await gatewayError(completeInternal(backend, request(), internalCall('llama3.2')))).toMatchObject({ code: 'invalid_request', retryable: false, message: 'ollama: simulated error 400' });

      sim.setFaults({ status: 429, retryAfterSeconds: 7 });
      expect(await gatewayError(completeInternal(backend, request(), internalCall('llama3.2')))).toMatchObject({ code: 'rate_limited', retryAfterMs: 7000 });
    });

    it('maps a closed port to backend_unavailable', async () => {
      const closed = await startOllamaSimulator();
      await closed.close();
      const offline = ollamaAt(closed.url);
      const err = await gatewayError(completeInternal(offline, request(), internalCall('llama3.2')));
      expect(err).toMatchObject({ code: 'backend_unavailable', message: 'ollama is unreachable: ECONNREFUSED' });
      expect((await gatewayError(offline.listModels(new AbortController().signal))).code).toBe('backend_unavailable');
      await offline.close();
    });

    it.each([
      { name: 'a malformed line', faults: { malformedAfterChunks: 2 }, message: /^ollama sent a malformed stream line$/ },
      { name: "Ollama's in-stream error line", faults: { errorLineAfterChunks: 2 }, message: /^ollama: llama runner process has terminated: exit status 2$/ },
      { name: 'a dropped connection', faults: { dropAfterChunks: 2 }, message: /^ollama closed the connection mid-answer$/ },
    ])('fails a stream on $name, after the chunks before it', async ({ faults, message }) => {
      sim.setFaults(faults);
      const received: ChatChunk[] = [];
      const err = await gatewayError(collectChunks(streamInternal(backend, request(), internalCall('llama3.2')), received));
      expect(err.code).toBe('backend_error');
      expect(err.message).toMatch(message);
      // At most the two chunks before the fault (a read holding the bad line with them is failed whole).
      expect(['', 'The', 'The lab']).toContain(contentOf(received));
    });

    it('fails a whole answer that is cut or not JSON', async () => {
      // Cut before any response header: the answer never began.
      sim.setFaults({ dropAfterChunks: 1 });
      expect(await gatewayError(completeInternal(backend, request(), internalCall('llama3.2')))).toMatchObject({ code: 'backend_unavailable', message: expect.stringMatching(/^ollama is unreachable: /) });
      sim.setFaults({ malformedAfterChunks: 1 });
      expect(await gatewayError(completeInternal(backend, request(), internalCall('llama3.2')))).toMatchObject({ code: 'backend_error', message: 'ollama sent a malformed answer' });
      // An error line instead of a whole answer is Ollama's 500.
      sim.setFaults({ errorLineAfterChunks: 1 });
      expect(await gatewayError(completeInternal(backend, request(), internalCall('llama3.2')))).toMatchObject({ code: 'backend_error', message: 'ollama failed with 500: llama runner process has terminated: exit status 2' });
    });

    it('refuses what Ollama cannot take before sending anything', async () => {
      const before = sim.requests.length;
      const err = await gatewayError(completeInternal(backend, request({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'http://example.com/a.png' } }] }] }), internalCall('llama3.2')));
      expect(err).toMatchObject({ code: 'invalid_request', param: 'messages[0].content' });
      expect(sim.requests.length).toBe(before);
    });
  });

  describe('cancellation', () => {
    it('aborts a stream mid-way: cancelled, and the simulator sees the client leave', async () => {
      sim.setOptions({ tokens: 50, tokenIntervalMs: 20 });
      const controller = new AbortController();
      const received: ChatChunk[] = [];
      const err = await gatewayError(async () => {
        for await (const chunks of streamInternal(backend, request(), internalCall('llama3.2', { signal: controller.signal }))) {
          received.push(...(chunks as ChatChunk[]));
          if (received.length >= 2) controller.abort();
        }
      });
      expect(err.code).toBe('cancelled');
      const record = sim.requests.at(-1)!;
      await expect.poll(() => record.aborted).toBe(true);
      expect(record.completed).toBe(false);
    });

    it('closes the connection when the consumer stops reading', async () => {
      sim.setOptions({ tokens: 50, tokenIntervalMs: 20 });
      for await (const chunks of streamInternal(backend, request(), internalCall('llama3.2'))) if (contentOf(chunks as ChatChunk[])) break;
      const record = sim.requests.at(-1)!;
      await expect.poll(() => record.aborted).toBe(true);
    });

    it('aborts a whole answer waiting for its first token', async () => {
      sim.setFaults({ stallBeforeFirstTokenMs: 10_000 });
      const controller = new AbortController();
      const before = sim.requests.length;
      const pending = completeInternal(backend, request(), internalCall('llama3.2', { signal: controller.signal }));
      await expect.poll(() => sim.requests.length).toBe(before + 1);
      controller.abort();
      expect((await gatewayError(pending)).code).toBe('cancelled');
      await expect.poll(() => sim.requests.at(-1)!.aborted).toBe(true);
    });
  });
});

describe("a proxy's answers in front of Ollama", () => {
  let status = 502;
  let proxy: Simulator;
  let behindProxy: Backend;
  beforeAll(async () => {
    proxy = await startSimServer({}, (_req, res) => {
      if (status === 0) {
        // A stream that ends without Ollama's final line.
        res.writeHead(200, { 'content-type': 'application/x-ndjson' });
        res.end(line({ message: { role: 'assistant', content: 'The' }, done: false }));
        return;
      }
      // nginx's error page, lines ending in CRLF.
      res.writeHead(status, { 'content-type': 'text/html' });
      res.end(`<html>\r\n<head><title>${status} Bad Gateway</title></head>\r\n<body>\r\n<center><h1>${status} Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n`);
    });
    behindProxy = ollamaAt(proxy.url);
  });
  afterAll(async () => {
    await behindProxy.close();
    await proxy.close();
  });

  it('an HTML error page says what came', async () => {
    status = 502;
    expect(await gatewayError(completeInternal(behindProxy, request(), internalCall('llama3.2')))).toMatchObject({
      code: 'backend_error', retryable: true, message: 'ollama failed with 502: HTTP 502 with a non-JSON body (text/html)',
    });
    expect(await gatewayError(behindProxy.listModels(new AbortController().signal))).toMatchObject({
      code: 'backend_error', message: 'ollama failed with 502: HTTP 502 with a non-JSON body (text/html)',
    });
  });

  it('an HTML 404 is no verdict on the model: backend_error', async () => {
    status = 404;
    expect(await gatewayError(completeInternal(behindProxy, request(), internalCall('llama3.2')))).toMatchObject({ code: 'backend_error', retryable: true });
  });

  it('an HTML page with status 200 in place of a stream or a model list → backend_error', async () => {
    status = 200;
    expect(await gatewayError(collectChunks(streamInternal(behindProxy, request(), internalCall('llama3.2'))))).toMatchObject({
      code: 'backend_error', message: 'ollama sent a malformed stream line',
    });
    expect(await gatewayError(behindProxy.listModels(new AbortController().signal))).toMatchObject({
      code: 'backend_error', message: 'ollama answered /api/tags with a non-JSON body (text/html)',
    });
  });

  it('a stream that ends without its final line → backend_error', async () => {
    status = 0;
    const received: ChatChunk[] = [];
    expect(await gatewayError(collectChunks(streamInternal(behindProxy, request(), internalCall('llama3.2')), received))).toMatchObject({
      code: 'backend_error', message: 'ollama ended the stream before the answer was complete',
    });
    expect(contentOf(received)).toBe('The');
  });
});

describe('Ollama backend and cold loads', () => {
  it('reports a cold load in loadMs; the model is loaded after it', async () => {
    await using sim = await startOllamaSimulator({ models: ['llama3.2'], loaded: [], coldLoadMs: 300, tokens: 3 });
    const backend = ollamaAt(sim.url);
    expect(sim.loadedModels()).toEqual([]);

    const stats: InternalStreamStats = {};
    const chunks = await collectChunks(streamInternal(backend, request(), internalCall('llama3.2'), stats));
    expect(contentOf(chunks)).toBe(simText(3));
    expect(stats.loadMs).toBeGreaterThanOrEqual(295);
    expect(sim.loadedModels()).toEqual(['llama3.2:latest']);
    expect((await backend.listModels(new AbortController().signal))[0]).toMatchObject({ id: 'llama3.2:latest', loaded: true });
    await backend.close();
  });

  it("the worker's event carries the load time of a streamed answer", async () => {
    await using sim = await startOllamaSimulator({ models: ['llama3.2'], loaded: [], coldLoadMs: 200, tokens: 3 });
    const backend = ollamaAt(sim.url);
    const record = await runWorkerRequest(backend, envelopeFor('openai.chat', { model: 'llama3.2', stream: true }), { model: 'lab/llama', messages: HELLO, stream: true });
    expect(record.failures).toEqual([]);
    expect(record.events[0]).toMatchObject({ status: 'ok', backend: 'ollama', loadMs: expect.any(Number) });
    expect(record.events[0]!.loadMs).toBeGreaterThanOrEqual(195);
    await backend.close();
  });

  it("the worker's event carries the load time of a whole answer too", async () => {
    await using sim = await startOllamaSimulator({ models: ['llama3.2'], loaded: [], coldLoadMs: 200, tokens: 3 });
    const backend = ollamaAt(sim.url);
    const record = await runWorkerRequest(backend, envelopeFor('openai.chat', { model: 'llama3.2' }), { model: 'lab/llama', messages: HELLO });
    expect(record.failures).toEqual([]);
    expect(record.events[0]).toMatchObject({ status: 'ok', loadMs: expect.any(Number) });
    await backend.close();
  });

  it('aborting during a cold load cancels the load: the model stays unloaded', async () => {
    await using sim = await startOllamaSimulator({ models: ['llama3.2'], loaded: [], coldLoadMs: 10_000 });
    const backend = ollamaAt(sim.url);
    const controller = new AbortController();
    const pending = collectChunks(streamInternal(backend, request(), internalCall('llama3.2', { signal: controller.signal })));
    await expect.poll(() => sim.requests.length).toBe(1);
    controller.abort();
    expect((await gatewayError(pending)).code).toBe('cancelled');
    const record = sim.requests.at(-1)!;
    await expect.poll(() => record.aborted).toBe(true);
    expect(sim.loadedModels()).toEqual([]);
    expect(await backend.listModels(new AbortController().signal)).toEqual([{ id: 'llama3.2:latest', created: expect.any(Number), loaded: false, facts: expect.not.objectContaining({ expires_at: expect.anything() as unknown }) as object }]);
    await backend.close();
  });
});

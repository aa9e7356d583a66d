import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { GatewayError } from '@homelab/bus';
import { simText, startOllamaSimulator, startSimServer, type OllamaSimulator } from '@homelab/simulators';
import type { ChatCall, ChatChunk, ChatRequest, ChatStreamStats } from '../types.ts';
import { readNdjson } from './api.ts';
import { createOllamaBackend } from './index.ts';

const weatherTool = {
  type: 'function' as const,
  function: {
    name: 'get_current_weather',
    description: 'Get the current weather for a location',
    parameters: { type: 'object', properties: { location: { type: 'string' }, days: { type: 'integer' } }, required: ['location'] },
  },
};

function call(request: Partial<ChatRequest> & Record<string, unknown>, signal = new AbortController().signal): ChatCall {
  return { request: { model: 'llama3.2', messages: [{ role: 'user', content: 'Hello lab' }], ...request } as ChatRequest, requestId: 'req-1', signal };
}

async function collect(chunks: AsyncIterable<ChatChunk>): Promise<ChatChunk[]> {
  const out: ChatChunk[] = [];
  for await (const chunk of chunks) out.push(chunk);
  return out;
}

function contentOf(chunks: ChatChunk[]): string {
  return chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
}

async function waitFor(check: () => boolean, ms = 2000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function rejection(promise: Promise<unknown>): Promise<GatewayError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    return err as GatewayError;
  }
  throw new Error('expected a rejection');
}

describe('readNdjson', () => {
  it('joins lines split across network chunks, multi-byte characters included', async () => {
    const bytes = new TextEncoder().encode('{"a":"caf\u00e9"}\n\n{"b":[1,\n2]}');
    const parts = [bytes.slice(0, 3), bytes.slice(3, 10), bytes.slice(10, 13), bytes.slice(13)];
    const body = new ReadableStream<Uint8Array>({ start(c) { for (const p of parts) c.enqueue(p); c.close(); } });
    const response = new Response(body, { headers: { 'content-type': 'application/x-ndjson' } });
    const seen: unknown[] = [];
    const err = await rejection((async () => { for await (const line of readNdjson(response, new AbortController().signal)) seen.push(line); })());
    expect(seen).toEqual([{ a: 'café' }]);
    expect(err).toMatchObject({ code: 'backend_error', message: 'ollama: malformed stream line: {"b":[1,' });
  });

  it('reads a last line without a newline', async () => {
    const response = new Response('{"done":false}\n{"done":true}', { headers: { 'content-type': 'application/x-ndjson' } });
    const seen: unknown[] = [];
    for await (const line of readNdjson(response, new AbortController().signal)) seen.push(line);
    expect(seen).toEqual([{ done: false }, { done: true }]);
  });
});

describe('Ollama backend against the simulator', () => {
  let sim: OllamaSimulator;
  let backend: ReturnType<typeof createOllamaBackend>;

  beforeAll(async () => {
    sim = await startOllamaSimulator({ models: ['llama3.2', 'qwen3:8b', 'all-minilm'], loaded: ['llama3.2', 'all-minilm'], tokens: 5 });
    backend = createOllamaBackend({ url: `${sim.url}/`, keepAlive: '10m' });
  });
  afterAll(() => sim.close());
  beforeEach(() => sim.setFaults({}));

  it('answers a non-streaming chat', async () => {
    const stats: ChatStreamStats = {};
    const completion = await backend.chat(call({ max_tokens: 100, temperature: 0.2 }), stats);
    expect(completion.object).toBe('chat.completion');
    expect(completion.model).toBe('llama3.2');
    expect(completion.choices[0]).toMatchObject({ finish_reason: 'stop', message: { role: 'assistant', content: 'The lab answers from the' } });
    expect(completion.usage).toEqual({ prompt_tokens: 3, completion_tokens: 5, total_tokens: 8 });
    // Like Ollama, the simulator reports the time until the model was ready: well under a millisecond when loaded.
    expect(stats.loadMs ?? 0).toBeLessThan(50);
    const record = sim.requests.at(-1)!;
    expect(record).toMatchObject({ method: 'POST', path: '/api/chat', completed: true });
    expect(record.body).toEqual({ model: 'llama3.2', messages: [{ role: 'user', content: 'Hello lab' }], stream: false, options: { num_predict: 100, temperature: 0.2 }, keep_alive: '10m' });
  });

  it('streams chunks and ends with usage', async () => {
    const chunks = await collect(backend.chatStream(call({ stream: true }), {}));
    expect(chunks[0]!.choices[0]!.delta).toEqual({ role: 'assistant', content: 'The' });
    expect(contentOf(chunks)).toBe(simText(5));
    expect(chunks).toHaveLength(5 + 2);
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe('stop');
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage: { prompt_tokens: 3, completion_tokens: 5, total_tokens: 8 } });
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
    expect((sim.requests.at(-1)!.body as { stream: boolean }).stream).toBe(true);
  });

  it('streams a tool call and answers one without streaming', async () => {
    const chunks = await collect(backend.chatStream(call({ tools: [weatherTool] }), {}));
    const calls = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(calls).toEqual([{ index: 0, id: expect.stringMatching(/^call_/), type: 'function', function: { name: 'get_current_weather', arguments: '{"location":"sim","days":1}' } }]);
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe('tool_calls');
    expect((sim.requests.at(-1)!.body as { tools: unknown }).tools).toEqual([weatherTool]);

    const completion = await backend.chat(call({ tools: [weatherTool] }), {});
    expect(completion.choices[0]!.finish_reason).toBe('tool_calls');
    expect(completion.choices[0]!.message.tool_calls).toEqual([{ id: expect.stringMatching(/^call_/), type: 'function', function: { name: 'get_current_weather', arguments: '{"location":"sim","days":1}' } }]);
  });

  it('answers JSON for response_format, stops at max_tokens and streams thinking', async () => {
    const schema = { type: 'object', properties: { age: { type: 'integer' }, available: { type: 'boolean' } }, required: ['age', 'available'] };
    const structured = await collect(backend.chatStream(call({ response_format: { type: 'json_schema', json_schema: { name: 'p', schema } } }), {}));
    expect(JSON.parse(contentOf(structured))).toEqual({ age: 1, available: true });
    expect((sim.requests.at(-1)!.body as { format: unknown }).format).toEqual(schema);

    const jsonMode = await backend.chat(call({ response_format: { type: 'json_object' } }), {});
    expect(JSON.parse(jsonMode.choices[0]!.message.content!)).toEqual({ answer: 'The lab answers' });

    const cut = await collect(backend.chatStream(call({ max_completion_tokens: 2 }), {}));
    expect(contentOf(cut)).toBe('The lab');
    expect(cut.at(-2)!.choices[0]!.finish_reason).toBe('length');

    const thinking = await collect(backend.chatStream(call({ model: 'qwen3:8b', think: true }), {}));
    const reasoning = thinking.map((c) => (c.choices[0]?.delta as { reasoning_content?: string } | undefined)?.reasoning_content ?? '').join('');
    expect(reasoning).toBe('Let me check the lab.');
    expect(contentOf(thinking)).toBe(simText(5));
  });

  it('embeds text', async () => {
    const result = await backend.embed({ request: { model: 'all-minilm', input: ['Why is the sky blue?', 'hi'] }, requestId: 'e1', signal: new AbortController().signal });
    expect(result.object).toBe('list');
    expect(result.model).toBe('all-minilm');
    expect(result.data.map((d) => d.index)).toEqual([0, 1]);
    expect(result.data[0]!.embedding).toHaveLength(8);
    expect(Math.hypot(...result.data[0]!.embedding)).toBeCloseTo(1, 6);
    expect(result.usage).toEqual({ prompt_tokens: 5 + 1, total_tokens: 6 });
    expect(sim.requests.at(-1)!.body).toEqual({ model: 'all-minilm', input: ['Why is the sky blue?', 'hi'], keep_alive: '10m' });

    const sized = await backend.embed({ request: { model: 'all-minilm', input: 'x', dimensions: 4 }, requestId: 'e2', signal: new AbortController().signal });
    expect(sized.data[0]!.embedding).toHaveLength(4);
  });

  it('lists models with the loaded flag from /api/ps', async () => {
    const models = await backend.listModels(new AbortController().signal);
    const created = Math.floor(Date.parse('2025-09-30T10:00:00Z') / 1000);
    expect(models).toEqual([
      { id: 'llama3.2:latest', created, loaded: true },
      { id: 'qwen3:8b', created, loaded: expect.any(Boolean) },
      { id: 'all-minilm:latest', created, loaded: true },
    ]);
    expect(models[1]!.loaded).toBe(sim.loadedModels().includes('qwen3:8b'));
  });

  describe('errors', () => {
    it('maps an unknown model to model_not_found', async () => {
      const err = await rejection(backend.chat(call({ model: 'mistral' }), {}));
      expect(err.code).toBe('model_not_found');
      expect(err.message).toBe("ollama: model 'mistral' not found");
      expect((await rejection(collect(backend.chatStream(call({ model: 'mistral' }), {})))).code).toBe('model_not_found');
      expect((await rejection(backend.embed({ request: { model: 'nomic', input: 'x' }, requestId: 'e', signal: new AbortController().signal }))).code).toBe('model_not_found');
    });

    it('maps 500, 503, 400 and 429 with Retry-After', async () => {
      sim.setFaults({ status: 500 });
      const e500 = await rejection(collect(backend.chatStream(call({}), {})));
      expect(e500).toMatchObject({ code: 'backend_error', retryable: true, message: 'ollama: llama runner process has terminated: exit status 2' });

      sim.setFaults({ status: 503 });
      expect((await rejection(backend.chat(call({}), {}))).code).toBe('backend_unavailable');

      sim.setFaults({ status: 400 });
      expect(await rejection(backend.chat(call({}), {}))).toMatchObject({ code: 'invalid_request', retryable: false, message: 'ollama: simulated error 400' });

      sim.setFaults({ status: 429, retryAfterSeconds: 7 });
      expect(await rejection(backend.chat(call({}), {}))).toMatchObject({ code: 'rate_limited', retryAfterMs: 7000 });
    });

    it('maps a closed port to backend_unavailable', async () => {
      const closed = await startOllamaSimulator();
      await closed.close();
      const offline = createOllamaBackend({ url: closed.url });
      const err = await rejection(offline.chat(call({}), {}));
      expect(err.code).toBe('backend_unavailable');
      expect(err.message).toMatch(/ECONNREFUSED/);
      expect((await rejection(offline.listModels(new AbortController().signal))).code).toBe('backend_unavailable');
    });

    it('fails a stream on a malformed line, an error line and a dropped connection, after the chunks before it', async () => {
      const cases = [
        { faults: { malformedAfterChunks: 2 }, message: /malformed stream line/ },
        { faults: { errorLineAfterChunks: 2 }, message: /^ollama: llama runner process has terminated/ },
        { faults: { dropAfterChunks: 2 }, message: /connection lost mid-stream: (terminated|other side closed|aborted)/ },
      ];
      for (const { faults, message } of cases) {
        sim.setFaults(faults);
        const seen: ChatChunk[] = [];
        const err = await rejection((async () => { for await (const chunk of backend.chatStream(call({}), {})) seen.push(chunk); })());
        expect(err.code).toBe('backend_error');
        expect(err.message).toMatch(message);
        expect(contentOf(seen)).toBe('The lab');
      }
    });

    it('fails a non-streaming answer that is cut or not JSON', async () => {
      // Cut before any response header: fetch itself fails, as with any network error.
      sim.setFaults({ dropAfterChunks: 1 });
      expect((await rejection(backend.chat(call({}), {}))).code).toBe('backend_unavailable');
      sim.setFaults({ malformedAfterChunks: 1 });
      expect(await rejection(backend.chat(call({}), {}))).toMatchObject({ code: 'backend_error', message: expect.stringMatching(/non-JSON body/) });
    });

    it('says so when a proxy answers with HTML', async () => {
      let status = 502;
      const proxy = await startSimServer({}, (_req, res) => {
        if (status === 0) {
          res.writeHead(200, { 'content-type': 'application/x-ndjson' });
          res.end('{"model":"llama3.2","message":{"role":"assistant","content":"The"},"done":false}\n');
          return;
        }
        res.writeHead(status, { 'content-type': 'text/html' });
        res.end('<html><body><h1>502 Bad Gateway</h1></body></html>');
      });
      try {
        const behindProxy = createOllamaBackend({ url: proxy.url });
        expect(await rejection(behindProxy.chat(call({}), {}))).toMatchObject({ code: 'backend_error', message: 'ollama answered HTTP 502 with a non-JSON body (text/html)' });
        status = 404;
        expect((await rejection(behindProxy.chat(call({}), {}))).code).toBe('backend_error');
        status = 200;
        expect(await rejection(collect(behindProxy.chatStream(call({}), {})))).toMatchObject({ code: 'backend_error', message: 'ollama answered HTTP 200 with a non-JSON body (text/html)' });
        expect(await rejection(behindProxy.listModels(new AbortController().signal))).toMatchObject({ code: 'backend_error', message: expect.stringMatching(/non-JSON body/) });
        status = 0; // a stream that ends without its final line
        expect(await rejection(collect(behindProxy.chatStream(call({}), {})))).toMatchObject({ code: 'backend_error', message: 'ollama: stream ended before the final line' });
      } finally {
        await proxy.close();
      }
    });

    it('refuses what Ollama cannot take before sending anything', async () => {
      const before = sim.requests.length;
      const err = await rejection(backend.chat(call({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'http://example.com/a.png' } }] }] }), {}));
      expect(err.code).toBe('invalid_request');
      expect(sim.requests.length).toBe(before);
    });
  });

  describe('cancellation', () => {
    it('aborts a stream mid-way: cancelled, and the simulator sees the client leave', async () => {
      sim.setOptions({ tokens: 50, tokenIntervalMs: 20 });
      try {
        const controller = new AbortController();
        const seen: ChatChunk[] = [];
        const err = await rejection((async () => {
          for await (const chunk of backend.chatStream(call({}, controller.signal), {})) {
            seen.push(chunk);
            if (seen.length === 2) controller.abort();
          }
        })());
        expect(err.code).toBe('cancelled');
        const record = sim.requests.at(-1)!;
        await waitFor(() => record.aborted);
        expect(record.completed).toBe(false);
      } finally {
        sim.setOptions({ tokens: 5, tokenIntervalMs: 0 });
      }
    });

    it('closes the connection when the consumer stops reading', async () => {
      sim.setOptions({ tokens: 50, tokenIntervalMs: 20 });
      try {
        for await (const chunk of backend.chatStream(call({}), {})) if (chunk.choices[0]?.delta.content) break;
        const record = sim.requests.at(-1)!;
        await waitFor(() => record.aborted);
      } finally {
        sim.setOptions({ tokens: 5, tokenIntervalMs: 0 });
      }
    });

    it('aborts a non-streaming call waiting for its first token', async () => {
      sim.setFaults({ stallBeforeFirstTokenMs: 5000 });
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 50);
      expect((await rejection(backend.chat(call({}, controller.signal), {}))).code).toBe('cancelled');
      await waitFor(() => sim.requests.at(-1)!.aborted);
    });
  });
});

describe('Ollama backend and cold loads', () => {
  it('reports a cold load in stats.loadMs, then only the short wait once loaded', async () => {
    await using sim = await startOllamaSimulator({ models: ['llama3.2'], loaded: [], coldLoadMs: 300, tokens: 3 });
    const backend = createOllamaBackend({ url: sim.url });
    expect(sim.loadedModels()).toEqual([]);

    const stats: ChatStreamStats = {};
    const chunks = await collect(backend.chatStream(call({}), stats));
    expect(contentOf(chunks)).toBe(simText(3));
    expect(stats.loadMs).toBeGreaterThanOrEqual(295);
    expect(stats.loadMs).toBeLessThan(2000);
    expect(sim.loadedModels()).toEqual(['llama3.2:latest']);
    expect((await backend.listModels(new AbortController().signal))[0]).toMatchObject({ id: 'llama3.2:latest', loaded: true });

    const warm: ChatStreamStats = {};
    await backend.chat(call({}), warm);
    expect(warm.loadMs ?? 0).toBeLessThan(50);
  });

  it('reports the load for a non-streaming call too', async () => {
    await using sim = await startOllamaSimulator({ models: ['llama3.2'], loaded: [], coldLoadMs: 200 });
    const stats: ChatStreamStats = {};
    await createOllamaBackend({ url: sim.url }).chat(call({}), stats);
    expect(stats.loadMs).toBeGreaterThanOrEqual(195);
  });

  it('aborting during a cold load cancels the load: the model stays unloaded', async () => {
    await using sim = await startOllamaSimulator({ models: ['llama3.2'], loaded: [], coldLoadMs: 5000 });
    const backend = createOllamaBackend({ url: sim.url });
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(), 100);
    const err = await rejection(collect(backend.chatStream(call({}, controller.signal), {})));
    expect(err.code).toBe('cancelled');
    expect(Date.now() - started).toBeLessThan(2000);
    const record = sim.requests.at(-1)!;
    await waitFor(() => record.aborted);
    expect(sim.loadedModels()).toEqual([]);
    const models = await backend.listModels(new AbortController().signal);
    expect(models).toEqual([{ id: 'llama3.2:latest', created: expect.any(Number), loaded: false }]);
  });
});

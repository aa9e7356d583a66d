import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startOllamaSimulator, type OllamaSimulator } from './ollama.ts';
import { simText } from './sim.ts';

// Checks the simulator's wire format against Ollama's own (api/types.go and server/routes.go, v0.12.3).

interface ChatAnswer { message: { content: string } }
interface EmbedAnswer { embeddings: number[][] }

function post(sim: OllamaSimulator, path: string, body: unknown, signal?: AbortSignal): Promise<Response> {
  return fetch(sim.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), ...(signal && { signal }) });
}

async function lines(response: Response): Promise<Record<string, unknown>[]> {
  return (await response.text()).split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('Ollama simulator', () => {
  let sim: OllamaSimulator;
  beforeAll(async () => { sim = await startOllamaSimulator({ models: ['llama3.2', 'nomic-embed-text'], tokens: 4 }); });
  afterAll(() => sim.close());
  beforeEach(() => sim.setFaults({}));

  it('answers the root, version, tags and ps endpoints', async () => {
    const root = await fetch(sim.url + '/');
    expect(await root.text()).toBe('Ollama is running');
    expect((await fetch(sim.url + '/', { method: 'HEAD' })).status).toBe(200);
    expect(await (await fetch(sim.url + '/api/version')).json()).toEqual({ version: '0.12.3' });

    const tags = await (await fetch(sim.url + '/api/tags')).json() as { models: Record<string, unknown>[] };
    expect(tags.models.map((m) => m.name)).toEqual(['llama3.2:latest', 'nomic-embed-text:latest']);
    expect(tags.models[0]).toEqual({
      name: 'llama3.2:latest', model: 'llama3.2:latest', modified_at: expect.any(String), size: expect.any(Number), digest: expect.stringMatching(/^[0-9a-f]{64}$/),
      details: { parent_model: '', format: 'gguf', family: 'llama', families: ['llama'], parameter_size: expect.any(String), quantization_level: 'Q4_K_M' },
    });

    const ps = await (await fetch(sim.url + '/api/ps')).json() as { models: Record<string, unknown>[] };
    expect(ps.models[0]).toMatchObject({ name: 'llama3.2:latest', model: 'llama3.2:latest', size_vram: tags.models[0]!.size, context_length: 4096 });
    expect(Date.parse(ps.models[0]!.expires_at as string)).toBeGreaterThan(Date.now());
    expect((await fetch(sim.url + '/api/nothing')).status).toBe(404);
  });

  it('streams NDJSON, one line per token, then the final line with metrics', async () => {
    const response = await post(sim, '/api/chat', { model: 'llama3.2', messages: [{ role: 'user', content: 'Hello lab' }] });
    expect(response.headers.get('content-type')).toBe('application/x-ndjson');
    const all = await lines(response);
    expect(all).toHaveLength(5);
    expect(all[0]).toEqual({ model: 'llama3.2', created_at: expect.any(String), message: { role: 'assistant', content: 'The' }, done: false });
    expect(all.slice(0, 4).map((l) => (l.message as { content: string }).content).join('')).toBe(simText(4));
    expect(all[4]).toEqual({
      model: 'llama3.2', created_at: expect.any(String), message: { role: 'assistant', content: '' }, done: true, done_reason: 'stop',
      total_duration: expect.any(Number), load_duration: expect.any(Number), prompt_eval_count: 3, prompt_eval_duration: expect.any(Number), eval_count: 4, eval_duration: expect.any(Number),
    });
    expect(sim.requests.at(-1)).toMatchObject({ path: '/api/chat', completed: true, body: { model: 'llama3.2' } });
  });

  it('answers one JSON with stream false, honouring num_predict, think, tools and format', async () => {
    const cut = await (await post(sim, '/api/chat', { model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], stream: false, think: true, options: { num_predict: 2 } })).json();
    expect(cut).toMatchObject({ message: { role: 'assistant', content: 'The lab', thinking: 'Let me check the lab.' }, done: true, done_reason: 'length' });

    const tools = [{ type: 'function', function: { name: 'get_current_weather', parameters: { type: 'object', properties: { location: { type: 'string' } } } } }];
    const withTool = await (await post(sim, '/api/chat', { model: 'llama3.2', messages: [{ role: 'user', content: 'Weather in Paris?' }], stream: false, tools })).json();
    expect(withTool).toMatchObject({ message: { content: '', tool_calls: [{ function: { name: 'get_current_weather', arguments: { location: 'sim' } } }] }, done_reason: 'stop' });

    // After a tool result the model answers in text.
    const afterTool = await (await post(sim, '/api/chat', { model: 'llama3.2', messages: [{ role: 'user', content: 'x' }, { role: 'tool', content: '22C', tool_name: 'get_current_weather' }], stream: false, tools })).json() as ChatAnswer;
    expect(afterTool.message).toEqual({ role: 'assistant', content: simText(4) });

    const json = await (await post(sim, '/api/chat', { model: 'llama3.2', messages: [{ role: 'user', content: 'x' }], stream: false, format: 'json' })).json() as ChatAnswer;
    expect(JSON.parse(json.message.content)).toEqual({ answer: 'The lab answers' });
  });

  it("answers 404 in Ollama's words for an unknown model, and status faults with Retry-After", async () => {
    const missing = await post(sim, '/api/chat', { model: 'mistral', messages: [] });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ error: 'model "mistral" not found, try pulling it first' });

    sim.setFaults({ status: 429, retryAfterSeconds: 3, failCount: 1 });
    const limited = await post(sim, '/api/chat', { model: 'llama3.2', messages: [] });
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('3');
    expect(await limited.json()).toEqual({ error: expect.any(String) });
    expect((await post(sim, '/api/chat', { model: 'llama3.2', messages: [], stream: false })).status).toBe(200);
  });

  it('writes an error line with HTTP 200 and a malformed line on request', async () => {
    sim.setFaults({ errorLineAfterChunks: 1 });
    const errored = await post(sim, '/api/chat', { model: 'llama3.2', messages: [] });
    expect(errored.status).toBe(200);
    const errorLines = await lines(errored);
    expect(errorLines).toHaveLength(2);
    expect(errorLines[1]).toEqual({ error: expect.stringMatching(/llama runner/) });

    sim.setFaults({ malformedAfterChunks: 1 });
    const text = await (await post(sim, '/api/chat', { model: 'llama3.2', messages: [] })).text();
    const raw = text.split('\n').filter((l) => l !== '');
    expect(raw).toHaveLength(6);
    expect(() => JSON.parse(raw[1]!)).toThrow();
    expect(JSON.parse(raw[5]!)).toMatchObject({ done: true });
  });

  it('embeds strings and arrays, refusing other input', async () => {
    const one = await (await post(sim, '/api/embed', { model: 'nomic-embed-text', input: 'Why is the sky blue?' })).json();
    expect(one).toEqual({ model: 'nomic-embed-text', embeddings: [expect.any(Array)], total_duration: expect.any(Number), load_duration: expect.any(Number), prompt_eval_count: 5 });
    const two = await (await post(sim, '/api/embed', { model: 'nomic-embed-text', input: ['Why is the sky blue?', 'b'], dimensions: 3 })).json() as EmbedAnswer;
    expect(two.embeddings.map((e) => e.length)).toEqual([3, 3]);
    expect(two.embeddings[0]).not.toEqual(two.embeddings[1]);
    const again = await (await post(sim, '/api/embed', { model: 'nomic-embed-text', input: 'Why is the sky blue?', dimensions: 3 })).json() as EmbedAnswer;
    expect(again.embeddings[0]).toEqual(two.embeddings[0]);
    const bad = await post(sim, '/api/embed', { model: 'nomic-embed-text', input: [1, 2] });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ error: 'invalid input type' });
  });
});

describe('Ollama simulator cold loads', () => {
  it('loads on first use, and a client leaving aborts the load', async () => {
    await using sim = await startOllamaSimulator({ models: ['llama3.2'], loaded: [], coldLoadMs: 150 });
    expect(await (await fetch(sim.url + '/api/ps')).json()).toEqual({ models: [] });

    const controller = new AbortController();
    const pending = post(sim, '/api/chat', { model: 'llama3.2', messages: [] }, controller.signal);
    setTimeout(() => controller.abort(), 30);
    await expect(pending).rejects.toThrow();
    await new Promise((r) => setTimeout(r, 200));
    expect(sim.requests.at(-1)!.aborted).toBe(true);
    expect(sim.loadedModels()).toEqual([]);

    const done = (await lines(await post(sim, '/api/chat', { model: 'llama3.2', messages: [] }))).at(-1)!;
    expect(done.load_duration).toBeGreaterThanOrEqual(145e6);
    expect(sim.loadedModels()).toEqual(['llama3.2:latest']);
    const warm = (await lines(await post(sim, '/api/chat', { model: 'llama3.2', messages: [] }))).at(-1)!;
    expect(warm.load_duration).toBeLessThan(50e6);
  });
});

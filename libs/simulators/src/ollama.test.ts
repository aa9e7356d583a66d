import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startOllamaSimulator, type OllamaSimulator } from './ollama.ts';
import { simText } from './sim.ts';

// Checks the simulator's wire format against Ollama's own (api/types.go and server/routes.go, v0.12.3).

interface ChatAnswer { message: { content: string } }

const HI = [{ role: 'user', content: 'hi' }];
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
    const missing = await post(sim, '/api/chat', { model: 'mistral', messages: HI });
    expect(missing.status).toBe(404);
    expect(missing.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(await missing.json()).toEqual({ error: "model 'mistral' not found" });

    sim.setFaults({ status: 429, retryAfterSeconds: 3, failCount: 1 });
    const limited = await post(sim, '/api/chat', { model: 'llama3.2', messages: HI });
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('3');
    expect(await limited.json()).toEqual({ error: expect.any(String) });
    expect((await post(sim, '/api/chat', { model: 'llama3.2', messages: HI, stream: false })).status).toBe(200);
  });

  it('writes an error line with HTTP 200 and a malformed line on request', async () => {
    sim.setFaults({ errorLineAfterChunks: 1 });
    const errored = await post(sim, '/api/chat', { model: 'llama3.2', messages: HI });
    expect(errored.status).toBe(200);
    const errorLines = await lines(errored);
    expect(errorLines).toHaveLength(2);
    expect(errorLines[1]).toEqual({ error: expect.stringMatching(/llama runner/) });

    sim.setFaults({ malformedAfterChunks: 1 });
    const text = await (await post(sim, '/api/chat', { model: 'llama3.2', messages: HI })).text();
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

describe('Ollama simulator: generate, show, the older embeddings, exact errors', () => {
  let sim: OllamaSimulator;
  beforeAll(async () => {
    sim = await startOllamaSimulator({
      models: ['llama3.2', 'codellama:code', 'nomic-embed-text'], tokens: 4,
      capabilities: { 'llama3.2': ['completion', 'tools'], 'codellama:code': ['completion', 'insert', 'thinking'], 'nomic-embed-text': ['embedding'] },
    });
  });
  afterAll(() => sim.close());
  beforeEach(() => sim.setFaults({}));

  it('streams /api/generate lines with response, then the final line with context and metrics', async () => {
    const response = await post(sim, '/api/generate', { model: 'llama3.2', prompt: 'Why is the sky blue?' });
    expect(response.headers.get('content-type')).toBe('application/x-ndjson');
    const all = await lines(response);
    expect(all).toHaveLength(5);
    expect(all[0]).toEqual({ model: 'llama3.2', created_at: expect.any(String), response: 'The', done: false });
    expect(all.slice(0, 4).map((l) => l.response).join('')).toBe(simText(4));
    expect(all[4]).toEqual({
      model: 'llama3.2', created_at: expect.any(String), response: '', done: true, done_reason: 'stop', context: expect.any(Array),
      total_duration: expect.any(Number), load_duration: expect.any(Number), prompt_eval_count: 5, prompt_eval_duration: expect.any(Number), eval_count: 4, eval_duration: expect.any(Number),
    });
  });

  it('fills in the middle with suffix, continues raw prompts without context, and thinks', async () => {
    const fim = await (await post(sim, '/api/generate', { model: 'codellama:code', prompt: 'def compute_gcd(a, b):', suffix: '    return result', options: { temperature: 0 }, stream: false })).json() as Record<string, unknown>;
    expect(fim).toMatchObject({ model: 'codellama:code', response: simText(4), done: true, done_reason: 'stop', context: expect.any(Array) });
    expect(sim.requests.at(-1)!.body).toMatchObject({ suffix: '    return result' });

    const raw = await (await post(sim, '/api/generate', { model: 'llama3.2', prompt: '[INST] why is the sky blue? [/INST]', raw: true, stream: false })).json() as Record<string, unknown>;
    expect(raw).toMatchObject({ response: simText(4), done: true });
    expect(raw).not.toHaveProperty('context');

    const thought = await lines(await post(sim, '/api/generate', { model: 'codellama:code', prompt: 'hi', think: true }));
    expect(thought.map((l) => l.thinking ?? '').join('')).toBe('Let me check the lab.');
    expect(thought.map((l) => l.response).join('')).toBe(simText(4));
  });

  it("refuses what Ollama refuses, in Ollama's words", async () => {
    const cases: [string, unknown, number, string][] = [
      ['/api/generate', { model: 'llama3.2', prompt: 'x', suffix: 'y' }, 400, 'registry.ollama.ai/library/llama3.2:latest does not support insert'],
      ['/api/generate', { model: 'llama3.2', prompt: 'x', think: true }, 400, 'registry.ollama.ai/library/llama3.2:latest does not support thinking'],
      ['/api/generate', { model: 'nomic-embed-text', prompt: 'x' }, 400, '"nomic-embed-text" does not support generate'],
      ['/api/chat', { model: 'nomic-embed-text', messages: HI }, 400, '"nomic-embed-text" does not support chat'],
      ['/api/chat', { model: 'codellama:code', messages: HI, tools: [{ type: 'function', function: { name: 'f', parameters: {} } }] }, 400, 'registry.ollama.ai/library/codellama:code does not support tools'],
      ['/api/generate', { model: 'llama3.2', prompt: 'x', raw: true, system: 'be brief' }, 400, 'raw mode does not support template, system, or context'],
      ['/api/generate', { model: 'mistral', prompt: 'x' }, 404, "model 'mistral' not found"],
      ['/api/embed', { model: 'mistral', input: 'x' }, 404, "model 'mistral' not found"],
      ['/api/embeddings', { model: 'mistral', prompt: 'x' }, 404, 'model "mistral" not found, try pulling it first'],
      ['/api/embeddings', { prompt: 'x' }, 400, 'model is required'],
      ['/api/chat', { messages: HI }, 400, 'model is required'],
      ['/api/show', {}, 400, 'model is required'],
      ['/api/show', { model: 'mistral' }, 404, "model 'mistral' not found"],
      ['/api/chat', { model: 'llama3.2', messages: 'hi' }, 400, 'json: cannot unmarshal string into Go struct field ChatRequest.messages of type []api.Message'],
      ['/api/generate', { model: 'llama3.2', prompt: 'x', stream: 'yes' }, 400, 'json: cannot unmarshal string into Go struct field GenerateRequest.stream of type bool'],
      ['/api/generate', { model: 'llama3.2', prompt: 'x', images: ['not base64!'] }, 400, 'illegal base64 data at input byte 3'],
    ];
    for (const [path, body, status, error] of cases) {
      const response = await post(sim, path, body);
      expect({ path, body, status: response.status, answer: await response.json() }).toEqual({ path, body, status, answer: { error } });
    }
    const empty = await fetch(sim.url + '/api/chat', { method: 'POST', body: '' });
    expect([empty.status, await empty.json()]).toEqual([400, { error: 'missing request body' }]);
    const cut = await fetch(sim.url + '/api/chat', { method: 'POST', body: '{"model":"llama3.2"' });
    expect([cut.status, await cut.json()]).toEqual([400, { error: 'unexpected EOF' }]);
    const garbage = await fetch(sim.url + '/api/chat', { method: 'POST', body: 'hello' });
    expect([garbage.status, await garbage.json()]).toEqual([400, { error: "invalid character 'h' looking for beginning of value" }]);
    const wrongMethod = await fetch(sim.url + '/api/chat');
    expect([wrongMethod.status, await wrongMethod.text()]).toEqual([405, '405 method not allowed']);
  });

  it('loads for an empty prompt or no messages and unloads with keep_alive 0, answering one JSON', async () => {
    const loadGenerate = await post(sim, '/api/generate', { model: 'llama3.2' });
    expect(loadGenerate.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(await loadGenerate.json()).toEqual({ model: 'llama3.2', created_at: expect.any(String), response: '', done: true, done_reason: 'load' });
    expect(sim.loadedModels()).toContain('llama3.2:latest');
    expect(await (await post(sim, '/api/generate', { model: 'llama3.2', keep_alive: 0 })).json()).toMatchObject({ response: '', done: true, done_reason: 'unload' });
    expect(sim.loadedModels()).not.toContain('llama3.2:latest');
    expect(await (await post(sim, '/api/chat', { model: 'llama3.2', messages: [] })).json()).toEqual({ model: 'llama3.2', created_at: expect.any(String), message: { role: 'assistant', content: '' }, done: true, done_reason: 'load' });
    expect(await (await post(sim, '/api/chat', { model: 'llama3.2', keep_alive: '0s' })).json()).toMatchObject({ done: true, done_reason: 'unload' });
    expect(await (await post(sim, '/api/embed', { model: 'nomic-embed-text' })).json()).toEqual({ model: 'nomic-embed-text', embeddings: [] });
    expect(await (await post(sim, '/api/embeddings', { model: 'nomic-embed-text', prompt: '' })).json()).toEqual({ embedding: [] });
  });

  it('accepts base64 images on /api/generate and /api/chat', async () => {
    const png = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==';
    expect((await post(sim, '/api/generate', { model: 'llama3.2', prompt: 'What is in this picture?', images: [png], stream: false })).status).toBe(200);
    expect((await post(sim, '/api/chat', { model: 'llama3.2', messages: [{ role: 'user', content: 'what is this?', images: [png] }], stream: false })).status).toBe(200);
  });

  it('shows a model with details, model_info and capabilities', async () => {
    const shown = await (await post(sim, '/api/show', { model: 'codellama:code' })).json() as Record<string, unknown>;
    expect(shown).toEqual({
      modelfile: expect.stringContaining('# Modelfile generated by "ollama show"'), parameters: expect.any(String), template: expect.stringContaining('.Suffix'),
      details: { parent_model: '', format: 'gguf', family: 'codellama', families: ['codellama'], parameter_size: '7.6B', quantization_level: 'Q4_K_M' },
      model_info: { 'general.architecture': 'codellama', 'general.parameter_count': expect.any(Number), 'codellama.context_length': 4096, 'codellama.embedding_length': 8 },
      capabilities: ['completion', 'insert', 'thinking'], modified_at: expect.any(String),
    });
    expect((await (await post(sim, '/api/show', { name: 'nomic-embed-text' })).json() as { capabilities: string[] }).capabilities).toEqual(['embedding']);
  });

  it('embeds one prompt on the older /api/embeddings', async () => {
    const answer = await (await post(sim, '/api/embeddings', { model: 'nomic-embed-text', prompt: 'Here is an article about llamas...' })).json() as { embedding: number[] };
    expect(Object.keys(answer)).toEqual(['embedding']);
    expect(answer.embedding).toHaveLength(8);
  });

  it('does everything asked of a model whose capabilities are not listed', async () => {
    await using open = await startOllamaSimulator({ models: ['nomic-embed-text'], tokens: 2 });
    const answer = await (await post(open, '/api/chat', { model: 'nomic-embed-text', messages: HI, stream: false, think: true })).json() as ChatAnswer;
    expect(answer.message.content).toBe(simText(2));
    expect((await (await post(open, '/api/show', { model: 'nomic-embed-text' })).json() as { capabilities: string[] }).capabilities).toEqual(['embedding']);
  });

  it('answers HEAD on /, /api/version and /api/tags', async () => {
    for (const path of ['/', '/api/version', '/api/tags']) expect((await fetch(sim.url + path, { method: 'HEAD' })).status).toBe(200);
  });

  it("records each request's body bytes as they arrived", async () => {
    const text = '{"model":"llama3.2",  "prompt":"hi","options":{"num_ctx":8192,"temperature":0.1},"keep_alive":"30m","stream":false}';
    await fetch(sim.url + '/api/generate', { method: 'POST', headers: { 'content-type': 'application/json' }, body: text });
    expect(sim.requests.at(-1)!.rawBody!.toString('utf8')).toBe(text);
  });
});

describe('Ollama simulator cold loads', () => {
  it('loads on first use, and a client leaving aborts the load', async () => {
    await using sim = await startOllamaSimulator({ models: ['llama3.2'], loaded: [], coldLoadMs: 150 });
    expect(await (await fetch(sim.url + '/api/ps')).json()).toEqual({ models: [] });

    const controller = new AbortController();
    const pending = post(sim, '/api/chat', { model: 'llama3.2', messages: HI }, controller.signal);
    setTimeout(() => controller.abort(), 30);
    await expect(pending).rejects.toThrow();
    await new Promise((r) => setTimeout(r, 200));
    expect(sim.requests.at(-1)!.aborted).toBe(true);
    expect(sim.loadedModels()).toEqual([]);

    const done = (await lines(await post(sim, '/api/chat', { model: 'llama3.2', messages: HI }))).at(-1)!;
    expect(done.load_duration).toBeGreaterThanOrEqual(145e6);
    expect(sim.loadedModels()).toEqual(['llama3.2:latest']);
    const warm = (await lines(await post(sim, '/api/chat', { model: 'llama3.2', messages: HI }))).at(-1)!;
    expect(warm.load_duration).toBeLessThan(50e6);
  });
});

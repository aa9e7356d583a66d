import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Ollama, type ChatResponse, type Message } from 'ollama';
import OpenAI from 'openai';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { GatewayError, toGatewayError } from '@homelab/bus';
import { simText, startOllamaSimulator, startOpenAISimulator, type OllamaSimulator, type Simulator } from '@homelab/simulators';
import { openAIChat, OpenAIStreamEncoder } from '../openai-chat/index.ts';
import { openAIEmbeddings } from '../openai-embeddings/index.ts';
import type { Completion, Dialect, InternalRequest, StreamDecoder, TranslationContext } from '../types.ts';
import {
  catalogIdForOllamaName, ollamaChat, ollamaChatShortcut, ollamaEmbed, ollamaEmbeddings, ollamaEmbeddingsShortcut, ollamaEmbedShortcut, ollamaError,
  ollamaGenerate, ollamaGenerateShortcut, ollamaManagementForbidden, ollamaModelNotFound, ollamaPs, ollamaShow, ollamaTags, ollamaVersion,
  OLLAMA_DIALECT_FOR_FORM, OLLAMA_JSON_CONTENT_TYPE, OLLAMA_MANAGEMENT_PATHS, OLLAMA_ROOT_TEXT, type CatalogEntry, type OllamaStreamWatch,
} from './index.ts';

/*
 * The official clients read what the dialect modules write. A small gateway on 127.0.0.1 wires the
 * modules as the worker will (pass-through to Ollama; otherwise client dialect → internal → backend
 * dialect and back) in front of the vLLM and Ollama simulators, and the `ollama` and `openai` npm
 * clients talk to it: their own parsers prove the wire format.
 */

const VLLM_MODELS = ['Qwen/Qwen2.5-7B-Instruct', 'BAAI/bge-m3'];
const OLLAMA_MODELS = ['llama3.2:3b', 'codellama:code', 'nomic-embed-text'];
const ALIASES: Record<string, string> = { smart: 'vllm/Qwen/Qwen2.5-7B-Instruct', local: 'ollama/llama3.2:3b', coder: 'ollama/codellama:code' };
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==';
const weatherTool = {
  type: 'function',
  function: {
    name: 'get_current_weather',
    description: 'Get the current weather for a location',
    parameters: { type: 'object', properties: { location: { type: 'string' }, days: { type: 'integer' } }, required: ['location', 'days'] },
  },
};

type Provider = 'vllm' | 'ollama';

const catalog: CatalogEntry[] = [
  ...VLLM_MODELS.map((id) => ({ id, object: 'model', created: 1_759_226_400, owned_by: 'vllm' })),
  ...OLLAMA_MODELS.map((id) => ({ id: id.includes(':') ? id : `${id}:latest`, object: 'model', created: 1_759_226_400, owned_by: 'ollama', loaded: id === 'llama3.2:3b' })),
  ...Object.entries(ALIASES).map(([id, target]) => ({ id, object: 'model', created: 1_759_226_400, owned_by: target.split('/')[0]!, alias_of: [target] })),
];

function route(requested: string): { provider: Provider; model: string } {
  const id = catalogIdForOllamaName(requested, catalog.map((e) => e.id));
  const entry = catalog.find((e) => e.id === id);
  if (!entry) throw ollamaModelNotFound(requested);
  const target = entry.alias_of?.[0] ?? `${entry.owned_by}/${entry.id}`;
  const slash = target.indexOf('/');
  return { provider: target.slice(0, slash) as Provider, model: target.slice(slash + 1) };
}

const OLLAMA_ROUTES: Record<string, { dialect: Dialect; check: ReturnType<typeof TypeCompiler.Compile>; shortcut: (body: never) => string | undefined }> = {
  '/api/chat': { dialect: ollamaChat as Dialect, check: TypeCompiler.Compile(ollamaChat.schema), shortcut: ollamaChatShortcut },
  '/api/generate': { dialect: ollamaGenerate as Dialect, check: TypeCompiler.Compile(ollamaGenerate.schema), shortcut: ollamaGenerateShortcut },
  '/api/embed': { dialect: ollamaEmbed as Dialect, check: TypeCompiler.Compile(ollamaEmbed.schema), shortcut: ollamaEmbedShortcut },
  '/api/embeddings': { dialect: ollamaEmbeddings as Dialect, check: TypeCompiler.Compile(ollamaEmbeddings.schema), shortcut: ollamaEmbeddingsShortcut },
};

const OLLAMA_PATH_OF: Record<string, string> = { 'ollama.chat': '/api/chat', 'ollama.generate': '/api/generate', 'ollama.embed': '/api/embed', 'ollama.embeddings': '/api/embeddings' };

/** What the little gateway saw of the last pass-through, to compare bytes. */
interface PassThroughSeen { sent?: Buffer; received?: Buffer; forwarded?: Buffer; watch?: OllamaStreamWatch }

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of req) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

function sendJson(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': OLLAMA_JSON_CONTENT_TYPE });
  res.end(body);
}

/** A backend's non-2xx answer as a gateway error (the worker's job; simplified here). */
async function backendError(response: Response, provider: Provider): Promise<GatewayError> {
  const text = await response.text();
  let message = text;
  try {
    const parsed = JSON.parse(text) as { error?: string | { message?: string } };
    message = typeof parsed.error === 'string' ? parsed.error : parsed.error?.message ?? text;
  } catch { /* not JSON: keep the text */ }
  const code = response.status === 404 ? 'model_not_found' : response.status < 500 ? 'invalid_request' : 'backend_error';
  return new GatewayError(code, `${provider}: ${message}`);
}

async function* bodyBytes(response: Response): AsyncGenerator<Uint8Array> {
  const reader = response.body!.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    yield value;
  }
}

/** Sends `internal` to `url` in the backend dialect `backend` and answers in the client dialect `client`. */
async function translate(res: ServerResponse, url: string, client: Dialect, backend: Dialect, internal: InternalRequest, context: TranslationContext, stream: boolean, clientBody: unknown, encodeCompletions = false): Promise<void> {
  const body = backend.requestFromInternal!(internal, { model: context.model, stream });
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!response.ok) throw await backendError(response, url.includes('/api/') ? 'ollama' : 'vllm');
  if (!stream) {
    const answer = backend.answerToInternal!(await response.json(), context);
    sendJson(res, 200, client.answerFromInternal ? client.answerFromInternal(answer, context, clientBody) : JSON.stringify(answer));
    return;
  }
  const decoder: StreamDecoder<unknown> = backend.createDecoder!(context);
  const encoder = encodeCompletions ? new OpenAIStreamEncoder<Completion>(context) : client.createEncoder!(context, clientBody);
  res.writeHead(200, { 'content-type': client.framing!.contentType });
  try {
    for await (const bytes of bodyBytes(response)) {
      for (const chunk of decoder.push(bytes)) res.write(encoder.push(chunk as Completion));
    }
    if (!decoder.complete) throw new GatewayError('backend_error', 'the backend stream ended early');
    res.end(encoder.end());
  } catch (err) {
    const error = err instanceof GatewayError ? err : new GatewayError('backend_error', `the backend failed mid-stream: ${(err as Error).message}`);
    res.end(encoder.fail(error));
  }
}

async function startGateway(sims: { vllm: Simulator; ollama: OllamaSimulator }, seen: PassThroughSeen, defaults: Record<string, unknown>): Promise<{ url: string; close(): Promise<void> }> {
  async function ollamaApi(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    if (path === '/' && (req.method === 'GET' || req.method === 'HEAD')) {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(req.method === 'HEAD' ? undefined : OLLAMA_ROOT_TEXT);
      return;
    }
    if (path === '/api/version') return sendJson(res, 200, JSON.stringify(ollamaVersion()));
    if (path === '/api/tags') return sendJson(res, 200, JSON.stringify(ollamaTags(catalog)));
    if (path === '/api/ps') return sendJson(res, 200, JSON.stringify(ollamaPs(catalog)));
    if (OLLAMA_MANAGEMENT_PATHS.some((p) => path === p || path.startsWith(`${p}/`))) {
      const { status, body } = ollamaManagementForbidden(path);
      return sendJson(res, status, body);
    }
    const raw = await readBody(req);
    if (path === '/api/show') return sendJson(res, 200, JSON.stringify(ollamaShow(catalog, JSON.parse(raw.toString('utf8')) as object)));
    const entry = OLLAMA_ROUTES[path];
    if (!entry) { res.writeHead(404, { 'content-type': 'text/plain' }); res.end('404 page not found'); return; }
    const { dialect, check, shortcut } = entry;
    const body = JSON.parse(raw.toString('utf8')) as { model: string };
    if (!check.Check(body)) {
      const first = check.Errors(body).First();
      throw new GatewayError('invalid_request', `${first?.path ?? ''}: ${first?.message ?? 'invalid request'}`);
    }
    const { stream } = dialect.routing(body);
    const target = route(body.model);
    const shortcutAnswer = target.provider !== 'ollama' ? shortcut(body as never) : undefined;
    if (shortcutAnswer !== undefined) return sendJson(res, 200, shortcutAnswer);
    const context: TranslationContext = { requestId: 'req-1', model: target.model, requestedModel: body.model, created: Math.floor(Date.now() / 1000), includeUsage: false };
    if (target.provider === 'ollama') return passThrough(res, dialect, raw, target.model, stream);
    const internal = dialect.requestToInternal!(body);
    const backend = (internal.form === 'embeddings' ? openAIEmbeddings : openAIChat) as Dialect;
    const url = sims.vllm.url + (internal.form === 'embeddings' ? '/v1/embeddings' : '/v1/chat/completions');
    return translate(res, url, dialect, backend, internal, context, stream, body);
  }

  /** The client speaks Ollama and so does the backend: bytes go through unchanged, the watch reads them. */
  async function passThrough(res: ServerResponse, dialect: Dialect, raw: Buffer, model: string, stream: boolean): Promise<void> {
    const sent = Buffer.from(dialect.passThrough!(raw, { model, stream, defaults }));
    seen.sent = sent;
    const response = await fetch(sims.ollama.url + OLLAMA_PATH_OF[dialect.name], { method: 'POST', headers: { 'content-type': 'application/json' }, body: sent });
    const contentType = response.headers.get('content-type') ?? OLLAMA_JSON_CONTENT_TYPE;
    res.writeHead(response.status, { 'content-type': contentType });
    const watch = stream && response.ok && contentType.includes('ndjson') ? (dialect.watch!({ includeUsage: false }) as OllamaStreamWatch) : undefined;
    seen.watch = watch;
    const received: Buffer[] = [];
    const forwarded: Buffer[] = [];
    for await (const bytes of bodyBytes(response)) {
      received.push(Buffer.from(bytes));
      const out = watch ? watch.push(bytes) : bytes;
      if (out) { forwarded.push(Buffer.from(out)); res.write(out); }
    }
    const tail = watch?.flush();
    if (tail) { forwarded.push(Buffer.from(tail)); res.write(tail); }
    seen.received = Buffer.concat(received);
    seen.forwarded = Buffer.concat(forwarded);
    res.end();
  }

  /** An OpenAI client whose model lives on Ollama: OpenAI's dialects in front, Ollama's behind. */
  async function openAIApi(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const body = JSON.parse((await readBody(req)).toString('utf8')) as { model: string; stream?: boolean; stream_options?: { include_usage?: boolean } };
    const target = route(body.model);
    const stream = body.stream === true;
    const context: TranslationContext = { requestId: 'req-2', model: target.model, requestedModel: body.model, created: Math.floor(Date.now() / 1000), includeUsage: body.stream_options?.include_usage === true };
    const client = (path === '/v1/embeddings' ? openAIEmbeddings : openAIChat) as Dialect;
    // No openai.completions dialect yet: a legacy completion request is the internal completion form itself.
    const internal: InternalRequest = path === '/v1/completions' ? { form: 'completion', request: body as never } : client.requestToInternal!(body);
    const backendName = OLLAMA_DIALECT_FOR_FORM[internal.form];
    const backend = { 'ollama.chat': ollamaChat, 'ollama.generate': ollamaGenerate, 'ollama.embed': ollamaEmbed }[backendName as 'ollama.chat'] as Dialect;
    const answerer = path === '/v1/completions' ? { ...client, answerFromInternal: undefined } : client;
    await translate(res, sims.ollama.url + OLLAMA_PATH_OF[backendName]!, answerer as Dialect, backend, internal, context, stream, body, path === '/v1/completions');
  }

  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const isOpenAI = path.startsWith('/v1/');
    const handled = isOpenAI ? openAIApi(req, res, path) : ollamaApi(req, res, path);
    handled.catch((err: unknown) => {
      const error = toGatewayError(err);
      if (res.headersSent) { res.destroy(); return; }
      if (isOpenAI) { res.writeHead(error.status, { 'content-type': 'application/json' }); res.end(JSON.stringify(error.toOpenAI())); return; }
      const { status, body } = ollamaError(error);
      sendJson(res, status, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }) };
}

describe('official clients against the Ollama dialects', () => {
  let vllm: Simulator;
  let ollamaSim: OllamaSimulator;
  let gateway: { url: string; close(): Promise<void> };
  let client: Ollama;
  const seen: PassThroughSeen = {};

  beforeAll(async () => {
    vllm = await startOpenAISimulator({ flavor: 'vllm', models: VLLM_MODELS, tokens: 4 });
    ollamaSim = await startOllamaSimulator({ models: OLLAMA_MODELS, tokens: 4, loaded: ['llama3.2:3b'], capabilities: { 'llama3.2:3b': ['completion', 'tools', 'vision', 'thinking'] } });
    gateway = await startGateway({ vllm, ollama: ollamaSim }, seen, { keep_alive: '30m' });
    client = new Ollama({ host: gateway.url });
  });
  afterAll(async () => {
    await gateway.close();
    await vllm.close();
    await ollamaSim.close();
  });
  beforeEach(() => {
    vllm.setFaults({});
    ollamaSim.setFaults({});
  });

  describe('the ollama client, on a model that is not on Ollama', () => {
    it('chats streamed: NDJSON lines, then the final line with counts', async () => {
      const parts: string[] = [];
      let last: ChatResponse | undefined;
      for await (const part of await client.chat({ model: 'smart', messages: [{ role: 'user', content: 'Why is the sky blue?' }], stream: true, options: { temperature: 0.2, num_ctx: 8192 } })) {
        parts.push(part.message.content);
        last = part;
      }
      expect(parts.join('')).toBe(simText(4));
      expect(last).toMatchObject({ model: 'smart', done: true, done_reason: 'stop', prompt_eval_count: expect.any(Number), eval_count: 4, eval_duration: expect.any(Number) });
      // Translated for vLLM: sampling kept, num_ctx dropped, usage asked for.
      expect(vllm.requests.at(-1)!.body).toEqual({
        model: 'Qwen/Qwen2.5-7B-Instruct', messages: [{ role: 'user', content: 'Why is the sky blue?' }], stream: true, temperature: 0.2, stream_options: { include_usage: true },
      });
    });

    it('chats without streaming (the npm client sends stream: false)', async () => {
      const answer = await client.chat({ model: 'smart:latest', messages: [{ role: 'user', content: 'hi' }] });
      expect(answer).toMatchObject({ model: 'smart:latest', message: { role: 'assistant', content: simText(4) }, done: true, done_reason: 'stop', eval_count: 4 });
    });

    it('round-trips a tool call: object arguments out, the tool result matched to its call back in', async () => {
      const messages: Message[] = [{ role: 'user', content: 'What is the weather in Paris?' }];
      const first = await client.chat({ model: 'smart', messages, tools: [weatherTool], stream: true });
      const calls: Message['tool_calls'] = [];
      for await (const part of first) calls.push(...(part.message.tool_calls ?? []));
      expect(calls).toEqual([{ id: expect.stringMatching(/^call_/), function: { index: 0, name: 'get_current_weather', arguments: { location: 'sim', days: 1 } } }]);

      messages.push({ role: 'assistant', content: '', tool_calls: calls }, { role: 'tool', content: '22 degrees', tool_name: 'get_current_weather' });
      const second = await client.chat({ model: 'smart', messages, tools: [weatherTool] });
      expect(second.message.content).toBe(simText(4));
      const sentToVllm = vllm.requests.at(-1)!.body as { messages: { role: string; tool_call_id?: string; tool_calls?: { id: string; function: { arguments: string } }[] }[] };
      const callId = sentToVllm.messages[1]!.tool_calls![0]!.id;
      expect(sentToVllm.messages[1]!.tool_calls![0]!.function.arguments).toBe('{"location":"sim","days":1}');
      expect(sentToVllm.messages[2]).toEqual({ role: 'tool', tool_call_id: callId, content: '22 degrees' });
    });

    it('sends images as data URLs', async () => {
      await client.chat({ model: 'smart', messages: [{ role: 'user', content: 'What is in this picture?', images: [PNG] }] });
      expect((vllm.requests.at(-1)!.body as { messages: unknown[] }).messages[0]).toEqual({
        role: 'user', content: [{ type: 'text', text: 'What is in this picture?' }, { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } }],
      });
    });

    it('generates, streamed and not, and answers a load request itself', async () => {
      const parts: string[] = [];
      for await (const part of await client.generate({ model: 'smart', prompt: 'Why is the sky blue?', system: 'Be brief.', stream: true })) parts.push(part.response ?? '');
      expect(parts.join('')).toBe(simText(4));
      expect((vllm.requests.at(-1)!.body as { messages: unknown[] }).messages).toEqual([{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Why is the sky blue?' }]);

      const whole = await client.generate({ model: 'smart', prompt: 'Why is the sky blue?' });
      expect(whole).toMatchObject({ model: 'smart', response: simText(4), done: true, done_reason: 'stop' });

      const before = vllm.requests.length;
      expect(await client.generate({ model: 'smart', prompt: '', keep_alive: 0 })).toMatchObject({ response: '', done: true, done_reason: 'unload' });
      expect(vllm.requests.length).toBe(before);
    });

    it('embeds with /api/embed and the older /api/embeddings', async () => {
      const embedded = await client.embed({ model: 'BAAI/bge-m3', input: ['Why is the sky blue?', 'Why is the grass green?'] });
      expect(embedded.model).toBe('BAAI/bge-m3');
      expect(embedded.embeddings).toHaveLength(2);
      expect(embedded.embeddings[0]!.every((v) => typeof v === 'number')).toBe(true);
      expect(embedded.prompt_eval_count).toBeGreaterThan(0);
      const single = await client.embeddings({ model: 'BAAI/bge-m3', prompt: 'Here is an article about llamas...' });
      expect(single.embedding).toEqual((await client.embed({ model: 'BAAI/bge-m3', input: 'Here is an article about llamas...' })).embeddings[0]);
    });
  });

  describe('the ollama client, on a model on Ollama: pass-through', () => {
    it('sends options, keep_alive and unknown fields to Ollama byte for byte, only the model changed, and the answer back unchanged', async () => {
      const parts: string[] = [];
      for await (const part of await client.chat({ model: 'local', messages: [{ role: 'user', content: 'hi' }], stream: true, options: { num_ctx: 8192, temperature: 0.1, mirostat: 2 }, keep_alive: '5m', think: false })) parts.push(part.message.content);
      expect(parts.join('')).toBe(simText(4));
      const atOllama = ollamaSim.requests.at(-1)!.rawBody!;
      expect(atOllama.equals(seen.sent!)).toBe(true);
      const sentByClient = JSON.parse(atOllama.toString('utf8').replace('"llama3.2:3b"', '"local"')) as Record<string, unknown>;
      expect(sentByClient).toEqual({ model: 'local', messages: [{ role: 'user', content: 'hi' }], stream: true, options: { num_ctx: 8192, temperature: 0.1, mirostat: 2 }, keep_alive: '5m', think: false });
      expect(seen.forwarded!.equals(seen.received!)).toBe(true);
      expect(seen.watch).toMatchObject({ hasContent: true, complete: true, facts: { responseModel: 'llama3.2:3b', finishReason: 'stop', outputTokens: 4 } });
    });

    it("adds the lab's keep_alive when the client sent none, and passes fill-in-the-middle to Ollama", async () => {
      const answer = await client.generate({ model: 'coder', prompt: 'def compute_gcd(a, b):', suffix: '    return result', options: { temperature: 0 } });
      expect(answer).toMatchObject({ model: 'codellama:code', response: simText(4), done: true });
      expect(ollamaSim.requests.at(-1)!.body).toMatchObject({ model: 'codellama:code', suffix: '    return result', keep_alive: '30m', stream: false });
    });

    it("forwards Ollama's own errors unchanged", async () => {
      await expect(client.generate({ model: 'local', prompt: 'x', suffix: 'y' })).rejects.toMatchObject({
        name: 'ResponseError', status_code: 400, error: 'registry.ollama.ai/library/llama3.2:3b does not support insert',
      });
    });
  });

  describe('model views', () => {
    it('lists, shows, ps and version through the client', async () => {
      const { models } = await client.list();
      expect(models.map((m) => m.name)).toEqual(['Qwen/Qwen2.5-7B-Instruct:latest', 'BAAI/bge-m3:latest', 'llama3.2:3b', 'codellama:code', 'nomic-embed-text:latest', 'smart:latest', 'local:latest', 'coder:latest']);
      expect((await client.show({ model: 'BAAI/bge-m3:latest' })).capabilities).toEqual(['embedding']);
      expect((await client.ps()).models.map((m) => m.name)).toEqual(['Qwen/Qwen2.5-7B-Instruct:latest', 'BAAI/bge-m3:latest', 'llama3.2:3b']);
      expect(await client.version()).toEqual({ version: '0.12.3' });
      expect(await (await fetch(gateway.url + '/')).text()).toBe('Ollama is running');
    });
  });

  describe('errors, as the client reads them (never [object Object])', () => {
    it("an unknown model: 404 with Ollama's text", async () => {
      const err = await client.chat({ model: 'mistral', messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
      expect(err).toMatchObject({ name: 'ResponseError', status_code: 404, error: "model 'mistral' not found", message: "model 'mistral' not found" });
      await expect(client.show({ model: 'mistral' })).rejects.toMatchObject({ status_code: 404, message: "model 'mistral' not found" });
    });

    it('a request of the wrong shape: 400 naming the field', async () => {
      const err = await client.chat({ model: 'smart', messages: 'hi' as unknown as Message[] }).catch((e: unknown) => e) as Error;
      expect(err).toMatchObject({ name: 'ResponseError', status_code: 400 });
      expect(err.message).toMatch(/^\/messages: /);
      const badImage = await client.chat({ model: 'smart', messages: [{ role: 'user', content: 'x', images: ['not base64!'] }] }).catch((e: unknown) => e);
      expect(badImage).toMatchObject({ status_code: 400, message: 'illegal base64 data at input byte 3' });
    });

    it('model management: 403 saying to manage models on the Ollama node', async () => {
      await expect(client.pull({ model: 'llama3.2' })).rejects.toMatchObject({ status_code: 403, message: expect.stringMatching(/manage models on the Ollama node/) });
      await expect(client.delete({ model: 'llama3.2' })).rejects.toMatchObject({ status_code: 403, message: expect.stringMatching(/^model management \(delete\)/) });
    });

    it('a backend error before the answer: its status and message', async () => {
      vllm.setFaults({ status: 500, failCount: 1 });
      await expect(client.chat({ model: 'smart', messages: [{ role: 'user', content: 'hi' }] })).rejects.toMatchObject({ status_code: 502, message: expect.stringMatching(/^vllm: /) });
    });

    it('a backend dropping mid-stream: the error line ends the stream and the client throws its text', async () => {
      vllm.setFaults({ dropAfterChunks: 2 });
      const parts: string[] = [];
      const err = await (async () => {
        for await (const part of await client.chat({ model: 'smart', messages: [{ role: 'user', content: 'hi' }], stream: true })) parts.push(part.message.content);
      })().catch((e: unknown) => e) as Error;
      expect(parts.join('')).toBe(simText(2));
      // The client throws the text of the gateway's error line: not its own "Did not receive done", nor [object Object].
      expect(err).toBeInstanceOf(Error);
      expect(err.message).toMatch(/^the backend failed mid-stream: /);
    });
  });

  describe('the openai client, on a model on Ollama: translated to Ollama', () => {
    let openai: OpenAI;
    beforeAll(() => { openai = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'lab-key', maxRetries: 0 }); });

    it('chats streamed and not, with usage', async () => {
      const stream = await openai.chat.completions.create({ model: 'local', messages: [{ role: 'user', content: 'hi' }], stream: true, stream_options: { include_usage: true } });
      let text = '';
      let usage: OpenAI.Completions.CompletionUsage | null | undefined;
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta.content ?? '';
        usage = chunk.usage ?? usage;
      }
      expect(text).toBe(simText(4));
      expect(usage).toMatchObject({ completion_tokens: 4 });
      expect(ollamaSim.requests.at(-1)!.body).toMatchObject({ model: 'llama3.2:3b', stream: true });

      const whole = await openai.chat.completions.create({ model: 'local', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
      expect(whole.choices[0]).toMatchObject({ message: { content: simText(2) }, finish_reason: 'length' });
      expect(ollamaSim.requests.at(-1)!.body).toMatchObject({ stream: false, options: { num_predict: 2 } });
    });

    it('streams a tool call with its arguments as JSON text', async () => {
      const stream = await openai.chat.completions.create({ model: 'local', messages: [{ role: 'user', content: 'Weather in Paris?' }], tools: [weatherTool as OpenAI.Chat.Completions.ChatCompletionTool], stream: true });
      const calls: OpenAI.Chat.Completions.ChatCompletionChunk.Choice.Delta.ToolCall[] = [];
      let finish: string | null | undefined;
      for await (const chunk of stream) {
        calls.push(...(chunk.choices[0]?.delta.tool_calls ?? []));
        finish = chunk.choices[0]?.finish_reason ?? finish;
      }
      expect(calls).toEqual([{ index: 0, id: expect.stringMatching(/^call_/), type: 'function', function: { name: 'get_current_weather', arguments: '{"location":"sim","days":1}' } }]);
      expect(finish).toBe('tool_calls');
    });

    it('fills in the middle with legacy completions: suffix reaches /api/generate', async () => {
      const stream = await openai.completions.create({ model: 'coder', prompt: 'def compute_gcd(a, b):', suffix: '    return result', max_tokens: 64, stream: true });
      let text = '';
      let finish: string | null | undefined;
      for await (const chunk of stream) {
        text += chunk.choices[0]?.text ?? '';
        finish = chunk.choices[0]?.finish_reason ?? finish;
      }
      expect(text).toBe(simText(4));
      expect(finish).toBe('stop');
      expect(ollamaSim.requests.at(-1)!.body).toEqual({ model: 'codellama:code', prompt: 'def compute_gcd(a, b):', suffix: '    return result', stream: true, options: { num_predict: 64 } });

      const whole = await openai.completions.create({ model: 'local', prompt: 'Once upon a time' });
      expect(whole.choices[0]).toMatchObject({ text: simText(4), finish_reason: 'stop' });
      expect(ollamaSim.requests.at(-1)!.body).toMatchObject({ prompt: 'Once upon a time', raw: true, stream: false });
    });

    it('embeds', async () => {
      const result = await openai.embeddings.create({ model: 'nomic-embed-text', input: ['a', 'b'] });
      expect(result.data.map((d) => d.embedding.length)).toEqual([8, 8]);
      expect(ollamaSim.requests.at(-1)!.body).toEqual({ model: 'nomic-embed-text:latest', input: ['a', 'b'] });
    });
  });
});

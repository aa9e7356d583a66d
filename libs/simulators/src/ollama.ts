import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendJson, simToken, sleep, startSimServer, type SimContext, type SimFaults, type SimOptions, type SimRequestRecord, type Simulator } from './sim.ts';

export interface OllamaSimFaults extends SimFaults {
  /** Write Ollama's in-stream error line `{"error":"…"}` (HTTP 200) after this many chunks, then end the stream. */
  errorLineAfterChunks?: number;
}

/** Ollama's model capabilities (`model.Capability`). */
export type OllamaSimCapability = 'completion' | 'tools' | 'insert' | 'vision' | 'embedding' | 'thinking';

export interface OllamaSimOptions extends SimOptions {
  /** How long loading an unloaded model takes before its first answer (default 0). */
  coldLoadMs?: number;
  /** Models loaded at start (default: all of `models`). */
  loaded?: string[];
  /**
   * What each model can do, by its name in `models`; only these lists are enforced (400s in Ollama's
   * words for tools, thinking, suffix or chat a model lacks). A model not listed does everything it
   * is asked (the lab's tests chat with the embedding model as a second model to load), and
   * `/api/show` reports it from its name: `embedding` for embedding models (`embed`, `minilm`,
   * `bge`), else `completion`, `tools`, `insert`, `vision`, `thinking`.
   */
  capabilities?: Record<string, OllamaSimCapability[]>;
  faults?: OllamaSimFaults;
}

/** A request as the simulator saw it, with the body's bytes exactly as they arrived. */
export interface OllamaSimRequestRecord extends SimRequestRecord {
  rawBody?: Buffer;
}

export interface OllamaSimulator extends Simulator {
  readonly requests: OllamaSimRequestRecord[];
  setFaults(faults: OllamaSimFaults): void;
  /** Names (`name:tag`) of the models in memory now, as `/api/ps` lists them. */
  loadedModels(): string[];
}

export const OLLAMA_SIM_VERSION = '0.12.3';
const THINKING = ['Let', ' me', ' check', ' the', ' lab', '.'];
const MODIFIED_AT = '2025-09-30T10:00:00.000000000Z';
const CONTEXT_LENGTH = 4096;
const EMBEDDING_LENGTH = 8;
const RUNNER_ERROR = 'llama runner process has terminated: exit status 2';
const JSON_TYPE = 'application/json; charset=utf-8';

/** Ollama names every model `name:tag`, `latest` when no tag is given. */
function fullName(model: string): string {
  return model.includes(':') ? model : `${model}:latest`;
}

/** The name Ollama's scheduler puts into capability errors: `registry.ollama.ai/library/llama3.2:latest`. */
function registryName(model: string): string {
  const name = fullName(model);
  return name.includes('/') ? `registry.ollama.ai/${name}` : `registry.ollama.ai/library/${name}`;
}

function isEmbeddingModel(model: string): boolean {
  return /embed|minilm|bge/i.test(model);
}

type Json = Record<string, unknown>;

interface Message { role?: string; content?: string; images?: string[] }

interface ChatBody {
  model?: string;
  messages?: Message[];
  stream?: boolean;
  format?: unknown;
  tools?: { function?: { name?: string; parameters?: { properties?: Record<string, { type?: string }> } } }[];
  think?: unknown;
  options?: { num_predict?: number };
  keep_alive?: string | number;
}

interface GenerateBody {
  model?: string;
  prompt?: string;
  suffix?: string;
  system?: string;
  template?: string;
  context?: number[];
  stream?: boolean;
  raw?: boolean;
  format?: unknown;
  images?: string[];
  think?: unknown;
  options?: { num_predict?: number };
  keep_alive?: string | number;
}

interface EmbedBody { model?: string; input?: unknown; dimensions?: number }
interface EmbeddingsBody { model?: string; prompt?: string }
interface ShowBody { model?: string; name?: string }

/** The Go type of each top-level field the handlers decode, to answer wrong types as Go's decoder does. */
const GO_FIELDS: Record<string, { struct: string; fields: Record<string, string> }> = {
  '/api/chat': { struct: 'ChatRequest', fields: { model: 'string', messages: '[]api.Message', stream: 'bool', tools: 'api.Tools', options: 'map[string]interface {}' } },
  '/api/generate': { struct: 'GenerateRequest', fields: { model: 'string', prompt: 'string', suffix: 'string', system: 'string', template: 'string', stream: 'bool', raw: 'bool', images: '[]api.ImageData', options: 'map[string]interface {}', context: '[]int' } },
  '/api/embed': { struct: 'EmbedRequest', fields: { model: 'string', truncate: 'bool', dimensions: 'int', options: 'map[string]interface {}' } },
  '/api/embeddings': { struct: 'EmbeddingRequest', fields: { model: 'string', prompt: 'string', options: 'map[string]interface {}' } },
  '/api/show': { struct: 'ShowRequest', fields: { model: 'string', name: 'string', system: 'string', verbose: 'bool' } },
};

/** JSON's name of a value's type, as Go's decoder reports it. */
function jsonKind(value: unknown): string {
  if (Array.isArray(value)) return 'array';
  if (value === null) return 'null';
  return typeof value === 'boolean' ? 'bool' : typeof value;
}

function goAccepts(goType: string, value: unknown): boolean {
  if (value === null) return true; // Go leaves a field alone for null
  if (goType === 'string') return typeof value === 'string';
  if (goType === 'bool') return typeof value === 'boolean';
  if (goType === 'int') return typeof value === 'number' && Number.isInteger(value);
  if (goType.startsWith('[]') || goType === 'api.Tools') return Array.isArray(value);
  if (goType.startsWith('map[')) return typeof value === 'object' && !Array.isArray(value);
  return true;
}

/** Go's `json: cannot unmarshal …` for the first top-level field of the wrong type, or undefined. */
function goTypeError(path: string, body: Json): string | undefined {
  const spec = GO_FIELDS[path];
  if (!spec) return undefined;
  for (const [field, goType] of Object.entries(spec.fields)) {
    if (!(field in body) || goAccepts(goType, body[field])) continue;
    return `json: cannot unmarshal ${jsonKind(body[field])} into Go struct field ${spec.struct}.${field} of type ${goType}`;
  }
  return undefined;
}

/** Go's decoding error for text that is not JSON (the common cases of encoding/json's wording). */
function goSyntaxError(text: string, err: Error): string {
  const position = /position (\d+)/.exec(err.message)?.[1];
  if (/end of (JSON )?input|Unterminated/i.test(err.message) || (position !== undefined && Number(position) >= text.trimEnd().length)) return 'unexpected EOF';
  const char = position !== undefined ? text[Number(position)] : /token '(.)'/.exec(err.message)?.[1] ?? text.trim()[0];
  return `invalid character '${char ?? ''}' looking for beginning of value`;
}

/** Go's base64 complaint about the first byte it cannot decode, as Ollama answers a bad image (HTTP 400). */
function base64Error(images: unknown): string | undefined {
  if (!Array.isArray(images)) return undefined;
  for (const image of images) {
    if (typeof image !== 'string') continue;
    const data = image.replace(/[\r\n]/g, '');
    if (/^[A-Za-z0-9+/]*={0,2}$/.test(data) && data.length % 4 === 0) continue;
    let at = 0;
    while (at < data.length && /[A-Za-z0-9+/]/.test(data[at]!)) at++;
    if (at === data.length) at = data.length - (data.length % 4);
    return `illegal base64 data at input byte ${at}`;
  }
  return undefined;
}

/** Deterministic stand-in for a token count: one token per 4 characters. */
function countTokens(text: string): number {
  return Math.max(1, Math.ceil(text.length / 4));
}

/** A value of the JSON Schema type asked for, so tool arguments and `format` answers are predictable. */
function sampleValue(type: string | undefined): unknown {
  switch (type) {
    case 'number': case 'integer': return 1;
    case 'boolean': return true;
    case 'array': return [];
    case 'object': return {};
    default: return 'sim';
  }
}

function sampleObject(properties: Record<string, { type?: string }> | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, schema] of Object.entries(properties ?? {})) out[key] = sampleValue(schema.type);
  return out;
}

/** Splits text into `parts` pieces of about equal length, as a tokenizer would stream them. */
function split(text: string, parts: number): string[] {
  const size = Math.max(1, Math.ceil(text.length / parts));
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
}

function familyOf(name: string): string {
  return name.split(/[:\d.]/)[0] || 'llama';
}

function modelEntry(name: string): Json {
  const digest = createHash('sha256').update(name).digest('hex');
  const family = familyOf(name);
  const size = 4_683_087_332;
  return {
    name, model: name, modified_at: MODIFIED_AT, size, digest,
    details: { parent_model: '', format: 'gguf', family, families: [family], parameter_size: '7.6B', quantization_level: 'Q4_K_M' },
  };
}

/** Writes one NDJSON line and waits until it left, so a drop fault that follows cuts after it, not before. */
function writeLine(res: ServerResponse, line: string): Promise<void> {
  return new Promise((resolve) => res.write(line + '\n', () => resolve()));
}

function sendOllamaJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  sendJson(res, status, body, { 'content-type': JSON_TYPE, ...headers });
}

function sendError(res: ServerResponse, status: number, message: string): void {
  sendOllamaJson(res, status, { error: message });
}

function errorStatus(res: ServerResponse, fault: { status: number; retryAfterSeconds?: number }): void {
  const messages: Record<number, string> = {
    500: RUNNER_ERROR,
    503: 'server busy, please try again.  maximum pending requests exceeded',
    429: 'too many requests',
  };
  const headers: Record<string, string> = fault.retryAfterSeconds === undefined ? {} : { 'retry-after': String(fault.retryAfterSeconds) };
  sendOllamaJson(res, fault.status, { error: messages[fault.status] ?? `simulated error ${fault.status}` }, headers);
}

/** `keep_alive` of zero (Ollama's "unload now"): 0, or a duration string of zero. */
function isZeroKeepAlive(value: unknown): boolean {
  return value === 0 || (typeof value === 'string' && /^[+-]?(0+(\.0*)?(ns|us|µs|ms|s|m|h)?)+$/.test(value));
}

/** One answer to stream or send whole: the `done:false` lines, and the final line built when the end is reached. */
interface Answer {
  lines: Json[];
  final: () => Json;
  /** The single JSON of `stream: false`. */
  whole: () => Json;
}

/**
 * Ollama's native API on 127.0.0.1: `GET|HEAD /`, `/api/version`, `/api/tags`, `/api/ps`,
 * `/api/show`, `/api/chat` and `/api/generate` (NDJSON by default; `suffix`, `raw`, `think`,
 * `images`, loading and unloading), `/api/embed` and the older `/api/embeddings`. Errors in
 * Ollama's words (v0.12.3), cold loads (`coldLoadMs`, aborted when the client leaves), the shared
 * faults plus `errorLineAfterChunks`, and each request's body bytes recorded as they arrived.
 */
export async function startOllamaSimulator(options: OllamaSimOptions = {}): Promise<OllamaSimulator> {
  const coldLoadMs = options.coldLoadMs ?? 0;
  const loaded = new Set((options.loaded ?? options.models ?? ['sim-model']).map(fullName));

  function configuredCapabilities(model: string): OllamaSimCapability[] | undefined {
    return Object.entries(options.capabilities ?? {}).find(([name]) => fullName(name) === fullName(model))?.[1];
  }

  function capabilitiesOf(model: string): OllamaSimCapability[] {
    return configuredCapabilities(model) ?? (isEmbeddingModel(model) ? ['embedding'] : ['completion', 'tools', 'insert', 'vision', 'thinking']);
  }

  function served(model: string, ctx: SimContext): boolean {
    return ctx.options.models.some((m) => fullName(m) === fullName(model));
  }

  /**
   * Reads the body as Ollama's handlers bind it: 400 for a missing body, bad JSON, a field of the
   * wrong type or an image that is not base64; then the status faults. Undefined when an error was sent.
   */
  async function readBody<T extends Json>(req: IncomingMessage, res: ServerResponse, ctx: SimContext, path: string): Promise<T | undefined> {
    const parts: Buffer[] = [];
    for await (const part of req) parts.push(part as Buffer);
    const raw = Buffer.concat(parts);
    (ctx.record as OllamaSimRequestRecord).rawBody = raw;
    const text = raw.toString('utf8');
    if (text.trim() === '') { sendError(res, 400, 'missing request body'); return undefined; }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (err) {
      sendError(res, 400, goSyntaxError(text, err as Error));
      return undefined;
    }
    ctx.record.body = body;
    // Go decodes `null` into a struct as "nothing set".
    if (body === null) body = {};
    if (typeof body !== 'object' || Array.isArray(body)) {
      sendError(res, 400, `json: cannot unmarshal ${jsonKind(body)} into Go value of type api.${GO_FIELDS[path]?.struct ?? 'Request'}`);
      return undefined;
    }
    const typed = body as T;
    const typeError = goTypeError(path, typed);
    const imageError = base64Error(typed['images']) ?? (Array.isArray(typed['messages']) ? (typed['messages'] as Message[]).map((m) => base64Error(m?.images)).find(Boolean) : undefined);
    if (typeError ?? imageError) { sendError(res, 400, (typeError ?? imageError)!); return undefined; }
    const fault = ctx.drawStatusFault();
    if (fault) { errorStatus(res, fault); return undefined; }
    return typed;
  }

  /** Loads the model when needed; false when the client left during the load (then it stays unloaded). */
  async function load(model: string, ctx: SimContext): Promise<boolean> {
    const name = fullName(model);
    if (loaded.has(name)) return true;
    await sleep(coldLoadMs, ctx.abortSignal);
    if (ctx.abortSignal.aborted) return false;
    loaded.add(name);
    return true;
  }

  /** Ollama's scheduler refuses a model without a capability the request needs (HTTP 400). */
  function missingCapability(model: string, wanted: OllamaSimCapability[], operation: 'chat' | 'generate'): string | undefined {
    const has = configuredCapabilities(model);
    if (!has) return undefined;
    if (wanted.includes('completion') && !has.includes('completion')) return `"${model}" does not support ${operation}`;
    const missing = wanted.filter((c) => !has.includes(c));
    return missing.length > 0 ? `${registryName(model)} does not support ${missing.join('\n')}` : undefined;
  }

  /** Streams the answer's lines then the final line, or sends it whole; honours the mid-stream faults. */
  async function respond(res: ServerResponse, ctx: SimContext, stream: boolean, answer: Answer): Promise<void> {
    const faults = ctx.faults as OllamaSimFaults;
    const pieces = answer.lines.length;
    if (!stream) {
      // Faults that hit a stream mid-way hit a whole answer before it is sent.
      if (faults.dropAfterChunks !== undefined && faults.dropAfterChunks <= pieces) { res.destroy(); return; }
      if (faults.errorLineAfterChunks !== undefined && faults.errorLineAfterChunks <= pieces) { sendError(res, 500, RUNNER_ERROR); return; }
      if (faults.malformedAfterChunks !== undefined && faults.malformedAfterChunks <= pieces) {
        res.writeHead(200, { 'content-type': JSON_TYPE });
        res.end('{"model": "' + String(answer.final()['model']));
        return;
      }
      for (let i = 0; i < pieces && ctx.options.tokenIntervalMs > 0; i++) await sleep(ctx.options.tokenIntervalMs, ctx.abortSignal);
      if (ctx.abortSignal.aborted) return;
      sendOllamaJson(res, 200, answer.whole());
      return;
    }
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    for (let i = 0; i <= pieces; i++) {
      if (ctx.abortSignal.aborted) return;
      if (faults.dropAfterChunks === i) { res.destroy(); return; }
      if (faults.malformedAfterChunks === i) await writeLine(res, '{"model":"' + String(answer.final()['model']) + '","message":');
      if (faults.errorLineAfterChunks === i) { res.end(JSON.stringify({ error: RUNNER_ERROR }) + '\n'); return; }
      const line = answer.lines[i];
      if (!line) break;
      if (i > 0) await sleep(ctx.options.tokenIntervalMs, ctx.abortSignal);
      if (ctx.abortSignal.aborted) return;
      await writeLine(res, JSON.stringify(line));
    }
    res.end(JSON.stringify(answer.final()) + '\n');
  }

  /** The answer's text pieces: a JSON object for `format`, else the deterministic tokens, cut at `num_predict`. */
  function textPieces(ctx: SimContext, format: unknown, numPredict: number | undefined): { content: string[]; doneReason: string } {
    let content: string[];
    if (format !== undefined && format !== null && format !== '') {
      const schema = format as { properties?: Record<string, { type?: string }> };
      const answer = schema?.properties ? sampleObject(schema.properties) : { answer: 'The lab answers' };
      content = split(JSON.stringify(answer), ctx.options.tokens);
    } else {
      content = Array.from({ length: ctx.options.tokens }, (_, i) => simToken(i));
    }
    if (numPredict !== undefined && numPredict >= 0 && numPredict < content.length) return { content: content.slice(0, numPredict), doneReason: 'length' };
    return { content, doneReason: 'stop' };
  }

  function metrics(started: number, loadNs: number, promptTokens: number, evalCount: number): Json {
    const totalNs = Math.round((performance.now() - started) * 1e6);
    return {
      total_duration: totalNs, load_duration: loadNs, prompt_eval_count: promptTokens, prompt_eval_duration: promptTokens * 1_000_000,
      eval_count: evalCount, eval_duration: Math.max(0, totalNs - loadNs),
    };
  }

  async function chat(req: IncomingMessage, res: ServerResponse, ctx: SimContext): Promise<void> {
    const started = performance.now();
    const body = await readBody<ChatBody & Json>(req, res, ctx, '/api/chat');
    if (!body) return;
    const model = body.model ?? '';
    if (!model) { sendError(res, 400, 'model is required'); return; }
    if (!served(model, ctx)) { sendError(res, 404, `model '${model}' not found`); return; }
    const messages = body.messages ?? [];
    if (messages.length === 0 && body.keep_alive !== undefined && isZeroKeepAlive(body.keep_alive)) {
      loaded.delete(fullName(model));
      sendOllamaJson(res, 200, { model, created_at: new Date().toISOString(), message: { role: 'assistant', content: '' }, done: true, done_reason: 'unload' });
      return;
    }
    const wanted: OllamaSimCapability[] = ['completion', ...(body.tools?.length ? ['tools' as const] : []), ...(body.think === true || typeof body.think === 'string' ? ['thinking' as const] : [])];
    const refusal = missingCapability(model, wanted, 'chat');
    if (refusal) { sendError(res, 400, refusal); return; }
    if (!(await load(model, ctx))) return;
    const loadNs = Math.round((performance.now() - started) * 1e6);
    if (messages.length === 0) {
      sendOllamaJson(res, 200, { model, created_at: new Date().toISOString(), message: { role: 'assistant', content: '' }, done: true, done_reason: 'load' });
      return;
    }
    await sleep((ctx.faults as OllamaSimFaults).stallBeforeFirstTokenMs ?? 0, ctx.abortSignal);
    if (ctx.abortSignal.aborted) return;

    const promptTokens = countTokens(messages.map((m) => m.content ?? '').join(''));
    const tool = messages.at(-1)?.role === 'user' ? body.tools?.[0]?.function : undefined;
    const thinking = body.think === true || typeof body.think === 'string' ? THINKING : [];

    // The answer as the chunks Ollama would stream: thinking, then content or one tool call.
    let content: string[] = [];
    let toolCalls: { function: { name: string; arguments: Record<string, unknown> } }[] = [];
    let doneReason = 'stop';
    if (tool) toolCalls = [{ function: { name: tool.name ?? 'tool', arguments: sampleObject(tool.parameters?.properties) } }];
    else ({ content, doneReason } = textPieces(ctx, body.format, body.options?.num_predict));
    const pieces: Json[] = [
      ...thinking.map((t) => ({ content: '', thinking: t })),
      ...content.map((c) => ({ content: c })),
      ...(toolCalls.length > 0 ? [{ content: '', tool_calls: toolCalls }] : []),
    ];
    const line = (message: Json, done: boolean): Json => ({ model, created_at: new Date().toISOString(), message: { role: 'assistant', ...message }, done });
    const end = (message: Json): Json => ({ ...line(message, true), done_reason: doneReason, ...metrics(started, loadNs, promptTokens, pieces.length) });
    await respond(res, ctx, body.stream !== false, {
      lines: pieces.map((piece) => line(piece, false)),
      final: () => end({ content: '' }),
      whole: () => end({
        content: content.join(''),
        ...(thinking.length > 0 && { thinking: thinking.join('') }),
        ...(toolCalls.length > 0 && { tool_calls: toolCalls }),
      }),
    });
  }

  async function generate(req: IncomingMessage, res: ServerResponse, ctx: SimContext): Promise<void> {
    const started = performance.now();
    const body = await readBody<GenerateBody & Json>(req, res, ctx, '/api/generate');
    if (!body) return;
    const model = body.model ?? '';
    if (!served(model, ctx)) { sendError(res, 404, `model '${model}' not found`); return; }
    const prompt = body.prompt ?? '';
    const now = (): string => new Date().toISOString();
    if (prompt === '' && body.keep_alive !== undefined && isZeroKeepAlive(body.keep_alive)) {
      loaded.delete(fullName(model));
      sendOllamaJson(res, 200, { model, created_at: now(), response: '', done: true, done_reason: 'unload' });
      return;
    }
    if (body.raw && (body.template || body.system || body.context?.length)) { sendError(res, 400, 'raw mode does not support template, system, or context'); return; }
    const think = body.think === true || typeof body.think === 'string';
    const wanted: OllamaSimCapability[] = ['completion', ...(body.suffix ? ['insert' as const] : []), ...(think ? ['thinking' as const] : [])];
    const refusal = missingCapability(model, wanted, 'generate');
    if (refusal) { sendError(res, 400, refusal); return; }
    if (!(await load(model, ctx))) return;
    const loadNs = Math.round((performance.now() - started) * 1e6);
    if (prompt === '') {
      sendOllamaJson(res, 200, { model, created_at: now(), response: '', done: true, done_reason: 'load' });
      return;
    }
    await sleep((ctx.faults as OllamaSimFaults).stallBeforeFirstTokenMs ?? 0, ctx.abortSignal);
    if (ctx.abortSignal.aborted) return;

    const promptTokens = countTokens((body.system ?? '') + prompt + (body.suffix ?? '')) + (body.images?.length ?? 0);
    // Raw mode skips the template, so there is no thinking to separate from the answer.
    const thinking = think && !body.raw ? THINKING : [];
    const { content, doneReason } = textPieces(ctx, body.format, body.options?.num_predict);
    const pieces: Json[] = [...thinking.map((t) => ({ response: '', thinking: t })), ...content.map((c) => ({ response: c }))];
    const line = (fields: Json, done: boolean): Json => ({ model, created_at: now(), response: '', ...fields, done });
    const end = (fields: Json): Json => ({
      ...line(fields, true),
      done_reason: doneReason,
      // The conversation as token ids (deprecated); raw mode never returns it.
      ...(!body.raw && { context: Array.from({ length: promptTokens + pieces.length }, (_, i) => i + 1) }),
      ...metrics(started, loadNs, promptTokens, pieces.length),
    });
    await respond(res, ctx, body.stream !== false, {
      lines: pieces.map((piece) => line(piece, false)),
      final: () => end({}),
      whole: () => end({ response: content.join(''), ...(thinking.length > 0 && { thinking: thinking.join('') }) }),
    });
  }

  async function embed(req: IncomingMessage, res: ServerResponse, ctx: SimContext): Promise<void> {
    const started = performance.now();
    const body = await readBody<EmbedBody & Json>(req, res, ctx, '/api/embed');
    if (!body) return;
    const inputs = typeof body.input === 'string' ? (body.input === '' ? [] : [body.input]) : body.input ?? [];
    if (!Array.isArray(inputs) || !inputs.every((s) => typeof s === 'string')) { sendError(res, 400, 'invalid input type'); return; }
    const model = body.model ?? '';
    if (!served(model, ctx)) { sendError(res, 404, `model '${model}' not found`); return; }
    if (!(await load(model, ctx))) return;
    const loadNs = Math.round((performance.now() - started) * 1e6);
    if (inputs.length === 0) { sendOllamaJson(res, 200, { model, embeddings: [] }); return; }
    const faults = ctx.faults as OllamaSimFaults;
    await sleep(faults.stallBeforeFirstTokenMs ?? 0, ctx.abortSignal);
    if (ctx.abortSignal.aborted) return;
    if (faults.dropAfterChunks !== undefined) { res.destroy(); return; }
    if (faults.malformedAfterChunks !== undefined) { res.writeHead(200, { 'content-type': JSON_TYPE }); res.end('{"embeddings": [['); return; }
    sendOllamaJson(res, 200, {
      model,
      embeddings: inputs.map((text) => embedding(text, body.dimensions || EMBEDDING_LENGTH)),
      total_duration: Math.round((performance.now() - started) * 1e6),
      load_duration: loadNs,
      prompt_eval_count: inputs.reduce((n, text) => n + countTokens(text), 0),
    });
  }

  /** The older `/api/embeddings`: one prompt, one vector; unknown models get the scheduler's wording. */
  async function embeddings(req: IncomingMessage, res: ServerResponse, ctx: SimContext): Promise<void> {
    const body = await readBody<EmbeddingsBody & Json>(req, res, ctx, '/api/embeddings');
    if (!body) return;
    const model = body.model ?? '';
    if (!model) { sendError(res, 400, 'model is required'); return; }
    if (!served(model, ctx)) { sendError(res, 404, `model ${JSON.stringify(model)} not found, try pulling it first`); return; }
    if (!(await load(model, ctx))) return;
    if (!body.prompt) { sendOllamaJson(res, 200, { embedding: [] }); return; }
    sendOllamaJson(res, 200, { embedding: embedding(body.prompt, EMBEDDING_LENGTH) });
  }

  async function show(req: IncomingMessage, res: ServerResponse, ctx: SimContext): Promise<void> {
    const body = await readBody<ShowBody & Json>(req, res, ctx, '/api/show');
    if (!body) return;
    const requested = body.model || body.name || '';
    if (!requested) { sendError(res, 400, 'model is required'); return; }
    if (!served(requested, ctx)) { sendError(res, 404, `model '${requested}' not found`); return; }
    const name = fullName(requested);
    const entry = modelEntry(name);
    const family = familyOf(name);
    const capabilities = capabilitiesOf(requested);
    sendOllamaJson(res, 200, {
      modelfile: `# Modelfile generated by "ollama show"\n# To build a new Modelfile based on this, replace FROM with:\n# FROM ${name}\n\nFROM /root/.ollama/models/blobs/sha256-${String(entry['digest'])}\nTEMPLATE {{ .Prompt }}\n`,
      parameters: 'stop                           "<|eot_id|>"',
      template: capabilities.includes('insert') ? '{{ if .Suffix }}<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>{{ else }}{{ .Prompt }}{{ end }}' : '{{ .Prompt }}',
      details: entry['details'],
      model_info: {
        'general.architecture': family,
        'general.parameter_count': 7_615_616_512,
        [`${family}.context_length`]: CONTEXT_LENGTH,
        [`${family}.embedding_length`]: EMBEDDING_LENGTH,
      },
      capabilities,
      modified_at: MODIFIED_AT,
    });
  }

  const routes: Record<string, Record<string, (req: IncomingMessage, res: ServerResponse, ctx: SimContext) => Promise<void> | void>> = {
    '/': { GET: root, HEAD: root },
    '/api/version': { GET: version, HEAD: version },
    '/api/tags': { GET: tags, HEAD: tags },
    '/api/ps': { GET: ps },
    '/api/show': { POST: show },
    '/api/chat': { POST: chat },
    '/api/generate': { POST: generate },
    '/api/embed': { POST: embed },
    '/api/embeddings': { POST: embeddings },
  };

  function root(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': 17 });
    res.end(req.method === 'HEAD' ? undefined : 'Ollama is running');
  }

  function version(_req: IncomingMessage, res: ServerResponse): void {
    sendOllamaJson(res, 200, { version: OLLAMA_SIM_VERSION });
  }

  function tags(_req: IncomingMessage, res: ServerResponse, ctx: SimContext): void {
    sendOllamaJson(res, 200, { models: ctx.options.models.map((m) => modelEntry(fullName(m))) });
  }

  function ps(_req: IncomingMessage, res: ServerResponse): void {
    const expiresAt = new Date(Date.now() + 5 * 60_000).toISOString();
    sendOllamaJson(res, 200, {
      models: [...loaded].map((name) => {
        const entry = modelEntry(name);
        return { name, model: name, size: entry['size'], digest: entry['digest'], details: entry['details'], expires_at: expiresAt, size_vram: entry['size'], context_length: CONTEXT_LENGTH };
      }),
    });
  }

  const sim = await startSimServer(options, async (req, res, ctx) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const methods = routes[path];
    const handler = methods?.[req.method ?? 'GET'];
    if (handler) return handler(req, res, ctx);
    // gin answers plain text for unknown routes and, with HandleMethodNotAllowed, for a wrong method.
    res.writeHead(methods ? 405 : 404, { 'content-type': 'text/plain' });
    res.end(methods ? '405 method not allowed' : '404 page not found');
  });
  return Object.assign(sim as Simulator & { requests: OllamaSimRequestRecord[] }, { loadedModels: () => [...loaded] });
}

/** A unit-length vector derived from the text, so the same text always embeds the same. */
function embedding(text: string, dimensions: number): number[] {
  const seed = createHash('sha256').update(text).digest();
  const vector = Array.from({ length: dimensions }, (_, i) => (seed[i % seed.length]! - 127.5) / 127.5);
  const norm = Math.hypot(...vector) || 1;
  return vector.map((v) => v / norm);
}

import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readJsonBody, sendJson, simToken, sleep, startSimServer, type SimContext, type SimFaults, type SimOptions, type Simulator } from './sim.ts';

export interface OllamaSimFaults extends SimFaults {
  /** Write Ollama's in-stream error line `{"error":"…"}` (HTTP 200) after this many chunks, then end the stream. */
  errorLineAfterChunks?: number;
}

export interface OllamaSimOptions extends SimOptions {
  /** How long loading an unloaded model takes before its first answer (default 0). */
  coldLoadMs?: number;
  /** Models loaded at start (default: all of `models`). */
  loaded?: string[];
  faults?: OllamaSimFaults;
}

export interface OllamaSimulator extends Simulator {
  setFaults(faults: OllamaSimFaults): void;
  /** Names (`name:tag`) of the models in memory now, as `/api/ps` lists them. */
  loadedModels(): string[];
}

export const OLLAMA_SIM_VERSION = '0.12.3';
const THINKING = ['Let', ' me', ' check', ' the', ' lab', '.'];
const MODIFIED_AT = '2025-09-30T10:00:00.000000000Z';
const CONTEXT_LENGTH = 4096;

/** Ollama names every model `name:tag`, `latest` when no tag is given. */
function fullName(model: string): string {
  return model.includes(':') ? model : `${model}:latest`;
}

interface ChatBody {
  model?: string;
  messages?: { role?: string; content?: string }[];
  stream?: boolean;
  format?: unknown;
  tools?: { function?: { name?: string; parameters?: { properties?: Record<string, { type?: string }> } } }[];
  think?: unknown;
  options?: { num_predict?: number };
}

interface EmbedBody { model?: string; input?: unknown; dimensions?: number }

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

function modelEntry(name: string): Record<string, unknown> {
  const digest = createHash('sha256').update(name).digest('hex');
  const family = name.split(/[:\d.]/)[0] || 'llama';
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

function errorStatus(res: ServerResponse, fault: { status: number; retryAfterSeconds?: number }): void {
  const messages: Record<number, string> = {
    500: 'llama runner process has terminated: exit status 2',
    503: 'server busy, please try again.  maximum pending requests exceeded',
    429: 'too many requests',
  };
  const headers: Record<string, string> = fault.retryAfterSeconds === undefined ? {} : { 'retry-after': String(fault.retryAfterSeconds) };
  sendJson(res, fault.status, { error: messages[fault.status] ?? `simulated error ${fault.status}` }, headers);
}

/**
 * Ollama's native API on 127.0.0.1: `/`, `/api/version`, `/api/tags`, `/api/ps`, `/api/chat` (NDJSON) and `/api/embed`,
 * with cold loads (`coldLoadMs`, aborted when the client leaves) and the shared faults plus `errorLineAfterChunks`.
 */
export async function startOllamaSimulator(options: OllamaSimOptions = {}): Promise<OllamaSimulator> {
  const coldLoadMs = options.coldLoadMs ?? 0;
  const loaded = new Set((options.loaded ?? options.models ?? ['sim-model']).map(fullName));

  /** Reads the body, applies status faults and the model check; undefined when an error was already sent. */
  async function admit<T extends { model?: string }>(req: IncomingMessage, res: ServerResponse, ctx: SimContext): Promise<T | undefined> {
    let body: T;
    try {
      body = ((await readJsonBody(req)) ?? {}) as T;
    } catch (err) {
      sendJson(res, 400, { error: (err as Error).message });
      return undefined;
    }
    ctx.record.body = body;
    const fault = ctx.drawStatusFault();
    if (fault) { errorStatus(res, fault); return undefined; }
    const model = body.model ?? '';
    if (!ctx.options.models.some((m) => fullName(m) === fullName(model))) {
      sendJson(res, 404, { error: `model "${model}" not found, try pulling it first` });
      return undefined;
    }
    return body;
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

  async function chat(req: IncomingMessage, res: ServerResponse, ctx: SimContext): Promise<void> {
    const started = performance.now();
    const body = await admit<ChatBody>(req, res, ctx);
    if (!body) return;
    if (!(await load(body.model!, ctx))) return;
    const loadNs = Math.round((performance.now() - started) * 1e6);
    const faults = ctx.faults as OllamaSimFaults;
    await sleep(faults.stallBeforeFirstTokenMs ?? 0, ctx.abortSignal);
    if (ctx.abortSignal.aborted) return;

    const messages = body.messages ?? [];
    const promptTokens = countTokens(messages.map((m) => m.content ?? '').join(''));
    const lastRole = messages.at(-1)?.role;
    const tool = lastRole === 'user' ? body.tools?.[0]?.function : undefined;
    const thinking = body.think === true || typeof body.think === 'string' ? THINKING : [];

    // The answer as the chunks Ollama would stream: thinking, then content or one tool call.
    let content: string[] = [];
    let toolCalls: { function: { name: string; arguments: Record<string, unknown> } }[] = [];
    let doneReason = 'stop';
    if (tool) {
      toolCalls = [{ function: { name: tool.name ?? 'tool', arguments: sampleObject(tool.parameters?.properties) } }];
    } else {
      const schema = body.format as { properties?: Record<string, { type?: string }> } | undefined;
      if (body.format !== undefined && body.format !== '') {
        const answer = schema?.properties ? sampleObject(schema.properties) : { answer: 'The lab answers' };
        content = split(JSON.stringify(answer), ctx.options.tokens);
      } else {
        for (let i = 0; i < ctx.options.tokens; i++) content.push(simToken(i));
      }
      const limit = body.options?.num_predict;
      if (limit !== undefined && limit >= 0 && limit < content.length) { content = content.slice(0, limit); doneReason = 'length'; }
    }
    const pieces: { content: string; thinking?: string; tool_calls?: typeof toolCalls }[] = [
      ...thinking.map((t) => ({ content: '', thinking: t })),
      ...content.map((c) => ({ content: c })),
      ...(toolCalls.length > 0 ? [{ content: '', tool_calls: toolCalls }] : []),
    ];

    const model = body.model!;
    const final = (message: Record<string, unknown>): Record<string, unknown> => {
      const totalNs = Math.round((performance.now() - started) * 1e6);
      return {
        model, created_at: new Date().toISOString(), message: { role: 'assistant', ...message }, done: true, done_reason: doneReason,
        total_duration: totalNs, load_duration: loadNs, prompt_eval_count: promptTokens, prompt_eval_duration: promptTokens * 1_000_000,
        eval_count: pieces.length, eval_duration: Math.max(0, totalNs - loadNs),
      };
    };

    if (body.stream === false) {
      // Faults that hit a stream mid-way hit a whole answer before it is sent.
      if (faults.dropAfterChunks !== undefined && faults.dropAfterChunks <= pieces.length) { res.destroy(); return; }
      if (faults.errorLineAfterChunks !== undefined && faults.errorLineAfterChunks <= pieces.length) { sendJson(res, 500, { error: 'llama runner process has terminated: exit status 2' }); return; }
      if (faults.malformedAfterChunks !== undefined && faults.malformedAfterChunks <= pieces.length) {
        res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' });
        res.end('{"model": "' + model);
        return;
      }
      for (let i = 0; i < pieces.length && ctx.options.tokenIntervalMs > 0; i++) await sleep(ctx.options.tokenIntervalMs, ctx.abortSignal);
      if (ctx.abortSignal.aborted) return;
      const message: Record<string, unknown> = { content: content.join('') };
      if (thinking.length > 0) message.thinking = thinking.join('');
      if (toolCalls.length > 0) message.tool_calls = toolCalls;
      sendJson(res, 200, final(message), { 'content-type': 'application/json; charset=utf-8' });
      return;
    }

    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    for (let i = 0; i <= pieces.length; i++) {
      if (ctx.abortSignal.aborted) return;
      if (faults.dropAfterChunks === i) { res.destroy(); return; }
      if (faults.malformedAfterChunks === i) await writeLine(res, '{"model":"' + model + '","message":');
      if (faults.errorLineAfterChunks === i) { res.end(JSON.stringify({ error: 'llama runner process has terminated: exit status 2' }) + '\n'); return; }
      const piece = pieces[i];
      if (!piece) break;
      if (i > 0) await sleep(ctx.options.tokenIntervalMs, ctx.abortSignal);
      if (ctx.abortSignal.aborted) return;
      await writeLine(res, JSON.stringify({ model, created_at: new Date().toISOString(), message: { role: 'assistant', ...piece }, done: false }));
    }
    res.end(JSON.stringify(final({ content: '' })) + '\n');
  }

  async function embed(req: IncomingMessage, res: ServerResponse, ctx: SimContext): Promise<void> {
    const started = performance.now();
    const body = await admit<EmbedBody>(req, res, ctx);
    if (!body) return;
    const inputs = typeof body.input === 'string' ? [body.input] : body.input;
    if (!Array.isArray(inputs) || !inputs.every((s) => typeof s === 'string')) { sendJson(res, 400, { error: 'invalid input type' }); return; }
    if (!(await load(body.model!, ctx))) return;
    const loadNs = Math.round((performance.now() - started) * 1e6);
    const faults = ctx.faults as OllamaSimFaults;
    await sleep(faults.stallBeforeFirstTokenMs ?? 0, ctx.abortSignal);
    if (ctx.abortSignal.aborted) return;
    if (faults.dropAfterChunks !== undefined) { res.destroy(); return; }
    if (faults.malformedAfterChunks !== undefined) { res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' }); res.end('{"embeddings": [['); return; }
    sendJson(res, 200, {
      model: body.model,
      embeddings: inputs.map((text) => embedding(text, body.dimensions || 8)),
      total_duration: Math.round((performance.now() - started) * 1e6),
      load_duration: loadNs,
      prompt_eval_count: inputs.reduce((n, text) => n + countTokens(text), 0),
    }, { 'content-type': 'application/json; charset=utf-8' });
  }

  const sim = await startSimServer(options, async (req, res, ctx) => {
    const path = (req.url ?? '/').split('?')[0];
    const route = `${req.method} ${path}`;
    switch (route) {
      case 'GET /':
      case 'HEAD /':
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': 17 });
        res.end(req.method === 'HEAD' ? undefined : 'Ollama is running');
        return;
      case 'GET /api/version':
        sendJson(res, 200, { version: OLLAMA_SIM_VERSION });
        return;
      case 'GET /api/tags':
        sendJson(res, 200, { models: ctx.options.models.map((m) => modelEntry(fullName(m))) });
        return;
      case 'GET /api/ps': {
        const expiresAt = new Date(Date.now() + 5 * 60_000).toISOString();
        sendJson(res, 200, {
          models: [...loaded].map((name) => {
            const entry = modelEntry(name);
            return { name, model: name, size: entry.size, digest: entry.digest, details: entry.details, expires_at: expiresAt, size_vram: entry.size, context_length: CONTEXT_LENGTH };
          }),
        });
        return;
      }
      case 'POST /api/chat':
        return chat(req, res, ctx);
      case 'POST /api/embed':
        return embed(req, res, ctx);
      default:
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('404 page not found');
    }
  });
  return Object.assign(sim, { loadedModels: () => [...loaded] });
}

/** A unit-length vector derived from the text, so the same text always embeds the same. */
function embedding(text: string, dimensions: number): number[] {
  const seed = createHash('sha256').update(text).digest();
  const vector = Array.from({ length: dimensions }, (_, i) => (seed[i % seed.length]! - 127.5) / 127.5);
  const norm = Math.hypot(...vector) || 1;
  return vector.map((v) => v / norm);
}

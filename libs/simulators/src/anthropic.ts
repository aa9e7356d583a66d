import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendJson, simToken, sleep, startSimServer, type SimContext, type SimFaults, type SimOptions, type SimRequestRecord, type Simulator } from './sim.ts';

export interface AnthropicSimFaults extends SimFaults {
  /** Write an `event: error` frame after this many content deltas, then end the stream. */
  errorEventAfterChunks?: number;
  /** Anthropic error type of that frame (default `overloaded_error`). */
  errorEventType?: string;
}

export interface AnthropicSimOptions extends SimOptions {
  /** When set, requests must carry it as `x-api-key` or `Authorization: Bearer`. */
  apiKey?: string;
  /** Added to `cache_read_input_tokens` of every answer (default 0), to exercise cache accounting without `cache_control`. */
  cacheReadInputTokens?: number;
  faults?: AnthropicSimFaults;
}

/** What the simulator saw of a request, with the body's exact bytes: proof that a request passed through unchanged. */
export interface AnthropicRequestRecord extends SimRequestRecord {
  /** The body as it arrived (empty for a GET). `headers` has `anthropic-version` and `anthropic-beta` as sent. */
  raw: Buffer;
}

export interface AnthropicSimulator extends Simulator {
  readonly requests: AnthropicRequestRecord[];
  setFaults(faults: AnthropicSimFaults): void;
}

interface MessagesBody {
  model?: unknown;
  max_tokens?: unknown;
  messages?: unknown;
  system?: unknown;
  tools?: Array<{ name: string; input_schema?: { properties?: Record<string, { type?: string }> } }>;
  tool_choice?: { type: string; name?: string };
  thinking?: { type: string; budget_tokens?: number };
  stop_sequences?: string[];
  stream?: boolean;
  cache_control?: unknown;
}

/** The input tokens of a prompt as the answer's usage splits them. */
interface InputUsage {
  input: number;
  cacheCreation: number;
  cacheRead: number;
}

interface TurnLike { role?: unknown; content?: unknown }

/** One content block of the answer, with the pieces it streams as. */
type PlannedBlock =
  | { type: 'thinking'; pieces: string[]; signature: string }
  | { type: 'text'; pieces: string[] }
  | { type: 'tool_use'; id: string; name: string; input: unknown; pieces: string[] };

interface Plan {
  blocks: PlannedBlock[];
  stopReason: 'end_turn' | 'max_tokens' | 'stop_sequence' | 'tool_use';
  stopSequence: string | null;
  outputTokens: number;
}

const THINKING = ['Let me think', ' about', ' this', ' request.'];

const ERROR_TYPES: Record<number, string> = {
  400: 'invalid_request_error', 401: 'authentication_error', 403: 'permission_error', 404: 'not_found_error',
  413: 'request_too_large', 429: 'rate_limit_error', 504: 'timeout_error', 529: 'overloaded_error',
};

const id = (prefix: string): string => prefix + randomBytes(12).toString('hex');

function sendError(res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  const requestId = id('req_');
  const body = { type: 'error', error: { type: ERROR_TYPES[status] ?? 'api_error', message }, request_id: requestId };
  sendJson(res, status, body, { 'request-id': requestId, ...headers });
}

/**
 * A simulator of Anthropic's API: Messages (`POST /v1/messages`, streaming and not, with thinking,
 * tool use and prompt caching), `POST /v1/messages/count_tokens` and `GET /v1/models`, with
 * Anthropic's validation, error shapes and SSE event order. It keeps each request's exact bytes.
 */
export async function startAnthropicSimulator(options: AnthropicSimOptions = {}): Promise<AnthropicSimulator> {
  const extraCacheRead = options.cacheReadInputTokens ?? 0;
  // Prompt prefixes written to the simulated cache, as Anthropic keeps them between requests.
  const cache = new Set<string>();
  const sim = await startSimServer(options, async (req, res, ctx) => {
    const record = ctx.record as AnthropicRequestRecord;
    const raw = await readRaw(req);
    record.raw = raw;
    const url = new URL(req.url ?? '/', 'http://sim');
    const path = url.pathname;

    if (options.apiKey !== undefined && !hasKey(req, options.apiKey)) return sendError(res, 401, 'invalid x-api-key');
    if (!req.headers['anthropic-version']) return sendError(res, 400, 'anthropic-version: header is required');

    if (req.method === 'GET' && path === '/v1/models') return sendJson(res, 200, modelPage(ctx.options.models, url.searchParams), { 'request-id': id('req_') });
    if (req.method === 'GET' && path.startsWith('/v1/models/')) {
      const model = decodeURIComponent(path.slice('/v1/models/'.length));
      if (!ctx.options.models.includes(model)) return sendError(res, 404, `model: ${model}`);
      return sendJson(res, 200, modelInfo(model, ctx.options.models.indexOf(model)), { 'request-id': id('req_') });
    }
    const counting = path === '/v1/messages/count_tokens';
    if (req.method !== 'POST' || (path !== '/v1/messages' && !counting)) return sendError(res, 404, `Not found: ${req.method} ${path}`);

    let body: MessagesBody;
    try {
      body = (raw.length > 0 ? JSON.parse(raw.toString('utf8')) : {}) as MessagesBody;
    } catch {
      return sendError(res, 400, 'There was an issue with your request body: it is not valid JSON');
    }
    record.body = body;

    if (counting) {
      const problem = validatePrompt(body, ctx.options.models);
      if (problem) return sendError(res, problem.status, problem.message);
      return sendJson(res, 200, { input_tokens: promptTokens(body) }, { 'request-id': id('req_') });
    }

    const fault = ctx.drawStatusFault();
    if (fault) {
      const headers: Record<string, string> = fault.retryAfterSeconds !== undefined ? { 'retry-after': String(fault.retryAfterSeconds) } : {};
      const message = fault.status === 429 ? 'Number of requests has exceeded your rate limit' : fault.status === 529 ? 'Overloaded' : 'Internal server error';
      return sendError(res, fault.status, message, headers);
    }

    const problem = validate(body, ctx.options.models);
    if (problem) return sendError(res, problem.status, problem.message);

    const plan = planAnswer(body, ctx.options.tokens);
    const model = body.model as string;
    const input = inputUsage(body, cache);
    input.cacheRead += extraCacheRead;
    if (body.stream) return streamAnswer(res, ctx, plan, model, input);

    await sleep(ctx.faults.stallBeforeFirstTokenMs ?? 0, ctx.abortSignal);
    if (ctx.abortSignal.aborted) return;
    // Without a stream, the chunk faults break the one answer: no answer at all, or one that is not JSON.
    if (ctx.faults.dropAfterChunks !== undefined) {
      res.destroy();
      return;
    }
    if (ctx.faults.malformedAfterChunks !== undefined) {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"id":"msg_');
      return;
    }
    sendJson(res, 200, {
      id: id('msg_'),
      type: 'message',
      role: 'assistant',
      model,
      content: plan.blocks.map(finalBlock),
      stop_reason: plan.stopReason,
      stop_sequence: plan.stopSequence,
      usage: usage(input, plan.outputTokens),
    }, { 'request-id': id('req_') });
  });
  return sim as AnthropicSimulator;
}

/** The SDK 1.x sends `Authorization: Bearer`, older clients `x-api-key`: accept both. */
function hasKey(req: IncomingMessage, key: string): boolean {
  return req.headers['x-api-key'] === key || req.headers.authorization === `Bearer ${key}`;
}

function validate(body: MessagesBody, models: string[]): { status: number; message: string } | undefined {
  if (typeof body.model !== 'string') return { status: 400, message: 'model: Field required' };
  if (!Number.isInteger(body.max_tokens) || (body.max_tokens as number) < 1) return { status: 400, message: 'max_tokens: Field required' };
  const thinking = body.thinking;
  if (thinking?.type === 'enabled') {
    const budget = thinking.budget_tokens ?? 0;
    if (budget < 1024) return { status: 400, message: 'thinking.enabled.budget_tokens: Input should be greater than or equal to 1024' };
    if (budget >= (body.max_tokens as number)) return { status: 400, message: '`max_tokens` must be greater than `thinking.budget_tokens`' };
    if (body.tool_choice?.type === 'any' || body.tool_choice?.type === 'tool') {
      return { status: 400, message: 'Thinking may not be enabled when tool_choice forces tool use.' };
    }
  }
  return validatePrompt(body, models);
}

/** The content block types of a turn, as Anthropic lists them when it refuses another. */
const BLOCK_TYPES = ['document', 'image', 'redacted_thinking', 'search_result', 'text', 'thinking', 'tool_result', 'tool_use'];
/** Blocks of Anthropic's server tools, which come back in the history of a conversation that used them. */
const SERVER_BLOCK = /^(server_tool_use|mcp_tool_use|mcp_tool_result|container_upload|[a-z_]+_tool_result)$/;

/**
 * What a Messages request and a token count request must both have right: the model and the turns.
 * Consecutive turns of one role are allowed: Anthropic combines them into one turn.
 */
function validatePrompt(body: MessagesBody, models: string[]): { status: number; message: string } | undefined {
  if (typeof body.model !== 'string') return { status: 400, message: 'model: Field required' };
  const messages = body.messages;
  if (!Array.isArray(messages) || messages.length === 0) return { status: 400, message: 'messages: at least one message is required' };
  for (const [i, m] of (messages as TurnLike[]).entries()) {
    if (m.role !== 'user' && m.role !== 'assistant') return { status: 400, message: `messages.${i}.role: Input should be 'user' or 'assistant'` };
    if (i === 0 && m.role !== 'user') return { status: 400, message: 'messages: first message must use the "user" role' };
    const unknown = Array.isArray(m.content) ? (m.content as { type?: unknown }[]).findIndex((b) => !isBlockType(b?.type)) : -1;
    if (unknown >= 0) {
      const tag = String((m.content as { type?: unknown }[])[unknown]?.type);
      return { status: 400, message: `messages.${i}.content.${unknown}: Input tag '${tag}' found using 'type' does not match any of the expected tags: ${BLOCK_TYPES.map((t) => `'${t}'`).join(', ')}` };
    }
  }
  if (!models.includes(body.model)) return { status: 404, message: `model: ${body.model}` };
  return undefined;
}

function isBlockType(type: unknown): boolean {
  return typeof type === 'string' && (BLOCK_TYPES.includes(type) || SERVER_BLOCK.test(type));
}

function planAnswer(body: MessagesBody, tokens: number): Plan {
  const maxTokens = body.max_tokens as number;
  const messages = body.messages as TurnLike[];
  const blocks: PlannedBlock[] = [];
  let outputTokens = 0;
  if (body.thinking && body.thinking.type !== 'disabled') {
    blocks.push({ type: 'thinking', pieces: THINKING, signature: randomBytes(24).toString('base64') });
    outputTokens += THINKING.length;
  }

  // The last turn, with the turns of the same role before it that Anthropic combines with it.
  const lastRole = messages.at(-1)?.role;
  let first = messages.length - 1;
  while (first > 0 && messages[first - 1]!.role === lastRole) first--;
  const last = messages.slice(first).flatMap((turn) => (Array.isArray(turn.content) ? turn.content as unknown[] : []));
  const answersToolResult = last.some((b) => (b as { type?: string } | null)?.type === 'tool_result');
  const tool = body.tools?.length && body.tool_choice?.type !== 'none' && !answersToolResult
    ? (body.tools.find((t) => t.name === body.tool_choice?.name) ?? body.tools[0])
    : undefined;

  if (tool) {
    const input = sampleInput(tool.input_schema?.properties);
    const json = JSON.stringify(input);
    blocks.push({ type: 'tool_use', id: id('toolu_'), name: tool.name, input, pieces: splitInThree(json) });
    return { blocks, stopReason: 'tool_use', stopSequence: null, outputTokens: outputTokens + 3 };
  }

  // Text: `tokens` simTokens, cut by max_tokens, then at the earliest stop sequence.
  const count = Math.min(tokens, maxTokens);
  let stopReason: Plan['stopReason'] = count < tokens ? 'max_tokens' : 'end_turn';
  let stopSequence: string | null = null;
  const pieces: string[] = [];
  for (let i = 0; i < count; i++) pieces.push(simToken(i));
  const full = pieces.join('');
  let cut = full.length;
  for (const seq of body.stop_sequences ?? []) {
    const at = seq === '' ? -1 : full.indexOf(seq);
    if (at !== -1 && at < cut) { cut = at; stopSequence = seq; stopReason = 'stop_sequence'; }
  }
  if (cut < full.length) {
    let end = 0;
    let kept = 0;
    while (kept < pieces.length && end + pieces[kept]!.length <= cut) end += pieces[kept++]!.length;
    pieces.length = kept;
    if (end < cut) pieces.push(full.slice(end, cut));
  }
  blocks.push({ type: 'text', pieces });
  return { blocks, stopReason, stopSequence, outputTokens: outputTokens + pieces.length };
}

/** A value of the right JSON type for each property, so tool arguments are predictable. */
function sampleInput(properties: Record<string, { type?: string }> | undefined): Record<string, unknown> {
  const input: Record<string, unknown> = {};
  for (const [name, schema] of Object.entries(properties ?? {})) {
    const type = schema?.type;
    input[name] = type === 'number' || type === 'integer' ? 42 : type === 'boolean' ? true : type === 'array' ? [] : type === 'object' ? {} : `sim-${name}`;
  }
  return input;
}

function splitInThree(text: string): string[] {
  const size = Math.ceil(text.length / 3);
  return [text.slice(0, size), text.slice(size, 2 * size), text.slice(2 * size)].filter((p) => p !== '');
}

function finalBlock(block: PlannedBlock): unknown {
  if (block.type === 'thinking') return { type: 'thinking', thinking: block.pieces.join(''), signature: block.signature };
  if (block.type === 'tool_use') return { type: 'tool_use', id: block.id, name: block.name, input: block.input };
  return { type: 'text', text: block.pieces.join('') };
}

function usage(input: InputUsage, output: number): Record<string, number> {
  return { input_tokens: input.input, output_tokens: output, cache_creation_input_tokens: input.cacheCreation, cache_read_input_tokens: input.cacheRead };
}

async function streamAnswer(res: ServerResponse, ctx: SimContext, plan: Plan, model: string, input: InputUsage): Promise<void> {
  const faults = ctx.faults as AnthropicSimFaults;
  const signal = ctx.abortSignal;
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'request-id': id('req_') });
  const send = (type: string, data: unknown): void => { res.write(`event: ${type}\ndata: ${JSON.stringify(data)}\n\n`); };

  send('message_start', {
    type: 'message_start',
    message: { id: id('msg_'), type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: usage(input, 1) },
  });
  let deltas = 0;
  for (const [index, block] of plan.blocks.entries()) {
    if (signal.aborted) return;
    const start = block.type === 'thinking' ? { type: 'thinking', thinking: '', signature: '' }
      : block.type === 'tool_use' ? { type: 'tool_use', id: block.id, name: block.name, input: {} }
      : { type: 'text', text: '' };
    send('content_block_start', { type: 'content_block_start', index, content_block: start });
    if (index === 0) {
      send('ping', { type: 'ping' });
      await sleep(faults.stallBeforeFirstTokenMs ?? 0, signal);
    }
    for (const piece of block.pieces) {
      if (signal.aborted) return;
      if (deltas > 0) await sleep(ctx.options.tokenIntervalMs, signal);
      if (deltas === faults.dropAfterChunks) return dropAfterFlush(res);
      if (deltas === faults.errorEventAfterChunks) {
        send('error', { type: 'error', error: { type: faults.errorEventType ?? 'overloaded_error', message: 'Overloaded' } });
        res.end();
        return;
      }
      if (deltas === faults.malformedAfterChunks) res.write('event: content_block_delta\ndata: {"type":"content_block_delta",\n\n');
      const delta = block.type === 'thinking' ? { type: 'thinking_delta', thinking: piece }
        : block.type === 'tool_use' ? { type: 'input_json_delta', partial_json: piece }
        : { type: 'text_delta', text: piece };
      send('content_block_delta', { type: 'content_block_delta', index, delta });
      deltas++;
    }
    if (block.type === 'thinking') send('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'signature_delta', signature: block.signature } });
    send('content_block_stop', { type: 'content_block_stop', index });
  }
  if (signal.aborted) return;
  send('message_delta', { type: 'message_delta', delta: { stop_reason: plan.stopReason, stop_sequence: plan.stopSequence }, usage: { output_tokens: plan.outputTokens } });
  send('message_stop', { type: 'message_stop' });
  res.end();
}

/** Cuts the connection once the frames written so far left the process, as a real drop mid-stream would. */
async function dropAfterFlush(res: ServerResponse): Promise<void> {
  // Node corks the socket until the next tick: destroying now would discard the frames.
  await new Promise((resolve) => setImmediate(resolve));
  const socket = res.socket;
  if (socket && socket.writableLength > 0) await once(socket, 'drain');
  res.destroy();
}

async function readRaw(req: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of req) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

/**
 * The prompt as the cache sees it: tool definitions, then system blocks, then each message's blocks,
 * in that order (Anthropic's), each with whether it carries a `cache_control` breakpoint. A top-level
 * `cache_control` puts the breakpoint on the last block, as Anthropic's automatic caching does.
 */
function promptItems(body: MessagesBody): { text: string; breakpoint: boolean }[] {
  const items: { text: string; breakpoint: boolean }[] = [];
  const add = (value: unknown, prefix = ''): void => {
    const record = value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : undefined;
    const { cache_control: cacheControl, ...rest } = record ?? {};
    items.push({ text: prefix + JSON.stringify(record ? rest : value), breakpoint: cacheControl != null });
  };
  for (const tool of body.tools ?? []) add(tool);
  if (Array.isArray(body.system)) for (const block of body.system) add(block, 'system:');
  else if (body.system !== undefined) add(body.system, 'system:');
  for (const turn of (Array.isArray(body.messages) ? body.messages : []) as TurnLike[]) {
    if (Array.isArray(turn.content)) for (const block of turn.content) add(block, `${String(turn.role)}:`);
    else add(turn.content, `${String(turn.role)}:`);
  }
  const last = items.at(-1);
  if (body.cache_control != null && last) last.breakpoint = true;
  return items;
}

/** Simulated tokens: a token per 4 characters of the items' JSON. */
function itemTokens(items: { text: string }[]): number {
  return Math.ceil(items.reduce((sum, item) => sum + item.text.length, 0) / 4);
}

/** `count_tokens`: the whole prompt, however much of it a cache holds. */
function promptTokens(body: MessagesBody): number {
  return Math.max(1, itemTokens(promptItems(body)));
}

/**
 * How the prompt's tokens split between the cache and fresh input: the longest prefix ending at a
 * breakpoint that an earlier request wrote is read; the rest up to the last breakpoint is written;
 * what follows is plain input. (Anthropic caches only prefixes of 1024+ tokens; the simulator caches any.)
 */
function inputUsage(body: MessagesBody, cache: Set<string>): InputUsage {
  const items = promptItems(body);
  const total = Math.max(1, itemTokens(items));
  const prefixes: string[] = [];
  let read = 0;
  let written = 0;
  items.forEach((item, i) => {
    if (!item.breakpoint) return;
    const key = createHash('sha256').update(items.slice(0, i + 1).map((it) => it.text).join('\u0000')).digest('base64');
    prefixes.push(key);
    const tokens = itemTokens(items.slice(0, i + 1));
    if (cache.has(key)) read = tokens;
    else written = tokens;
  });
  for (const key of prefixes) cache.add(key);
  const cacheCreation = Math.max(0, written - read);
  return { input: Math.max(0, total - read - cacheCreation), cacheCreation, cacheRead: read };
}

/** Anthropic's display name from a model id: `claude-sonnet-4-5` and `claude-sonnet-4-5-20250929` → `Claude Sonnet 4.5`. */
function displayName(model: string): string {
  return model.split('-').filter((part) => !/^\d{8}$/.test(part)).reduce<string[]>((words, part) => {
    const last = words.at(-1);
    if (/^\d+$/.test(part) && last !== undefined && /^\d+(\.\d+)*$/.test(last)) words[words.length - 1] = `${last}.${part}`;
    else words.push(/^\d/.test(part) ? part : part.charAt(0).toUpperCase() + part.slice(1));
    return words;
  }, []).join(' ');
}

function modelInfo(model: string, index: number): Record<string, string> {
  // Newest first, as Anthropic lists them: a day apart, counting back from a fixed date.
  const created = new Date(Date.UTC(2025, 8, 29) - index * 86_400_000).toISOString().replace('.000Z', 'Z');
  return { type: 'model', id: model, display_name: displayName(model), created_at: created };
}

/** `GET /v1/models`: one page, by `limit` (default 20), `after_id` and `before_id`. */
function modelPage(models: string[], query: URLSearchParams): Record<string, unknown> {
  const limit = Math.min(1000, Math.max(1, Number(query.get('limit') ?? 20) || 20));
  let start = 0;
  let end = models.length;
  const after = query.get('after_id');
  const before = query.get('before_id');
  if (after !== null) start = models.indexOf(after) + 1 || models.length;
  if (before !== null) {
    end = Math.max(0, models.indexOf(before));
    start = Math.max(start, end - limit);
  }
  const page = models.slice(start, Math.min(end, start + limit));
  const hasMore = before !== null ? start > 0 : start + page.length < models.length;
  return { data: page.map((m) => modelInfo(m, models.indexOf(m))), has_more: page.length > 0 && hasMore, first_id: page[0] ?? null, last_id: page.at(-1) ?? null };
}

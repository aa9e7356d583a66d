import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readJsonBody, sendJson, simToken, sleep, startSimServer, type SimContext, type SimFaults, type SimOptions, type Simulator } from './sim.ts';

export interface AnthropicSimFaults extends SimFaults {
  /** Write an `event: error` frame after this many content deltas, then end the stream. */
  errorEventAfterChunks?: number;
  /** Anthropic error type of that frame (default `overloaded_error`). */
  errorEventType?: string;
}

export interface AnthropicSimOptions extends SimOptions {
  /** When set, requests must carry it as `x-api-key` or `Authorization: Bearer`. */
  apiKey?: string;
  /** Reported as `cache_read_input_tokens` (default 0), to exercise cache accounting. */
  cacheReadInputTokens?: number;
  faults?: AnthropicSimFaults;
}

export interface AnthropicSimulator extends Simulator {
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
  inputTokens: number;
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
 * A simulator of Anthropic's Messages API (`POST /v1/messages`), streaming and not, with
 * Anthropic's validation, error shapes and SSE event order, for tests of the Anthropic backend.
 */
export async function startAnthropicSimulator(options: AnthropicSimOptions = {}): Promise<AnthropicSimulator> {
  const cacheRead = options.cacheReadInputTokens ?? 0;
  const sim = await startSimServer(options, async (req, res, ctx) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'POST' || path !== '/v1/messages') return sendError(res, 404, `Not found: ${req.method} ${path}`);

    let body: MessagesBody;
    try {
      body = ((await readJsonBody(req)) ?? {}) as MessagesBody;
    } catch {
      return sendError(res, 400, 'There was an issue with your request body: it is not valid JSON');
    }
    ctx.record.body = body;

    if (options.apiKey !== undefined && !hasKey(req, options.apiKey)) return sendError(res, 401, 'invalid x-api-key');
    if (!req.headers['anthropic-version']) return sendError(res, 400, 'anthropic-version: header is required');

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
    if (body.stream) return streamAnswer(res, ctx, plan, model, cacheRead);

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
      usage: usage(plan.inputTokens, plan.outputTokens, cacheRead),
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
  const messages = body.messages;
  if (!Array.isArray(messages) || messages.length === 0) return { status: 400, message: 'messages: at least one message is required' };
  let previous: unknown;
  for (const [i, m] of (messages as TurnLike[]).entries()) {
    if (m.role !== 'user' && m.role !== 'assistant') return { status: 400, message: `messages.${i}.role: Input should be 'user' or 'assistant'` };
    if (i === 0 && m.role !== 'user') return { status: 400, message: 'messages: first message must use the "user" role' };
    if (m.role === previous) return { status: 400, message: `messages: roles must alternate between "user" and "assistant", but found multiple "${m.role}" roles in a row` };
    previous = m.role;
  }
  const thinking = body.thinking;
  if (thinking?.type === 'enabled') {
    const budget = thinking.budget_tokens ?? 0;
    if (budget < 1024) return { status: 400, message: 'thinking.enabled.budget_tokens: Input should be greater than or equal to 1024' };
    if (budget >= (body.max_tokens as number)) return { status: 400, message: '`max_tokens` must be greater than `thinking.budget_tokens`' };
  }
  if (!models.includes(body.model)) return { status: 404, message: `model: ${body.model}` };
  return undefined;
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

  const last = messages.at(-1)?.content;
  const answersToolResult = Array.isArray(last) && last.some((b: { type?: string }) => b?.type === 'tool_result');
  const tool = body.tools?.length && body.tool_choice?.type !== 'none' && !answersToolResult
    ? (body.tools.find((t) => t.name === body.tool_choice?.name) ?? body.tools[0])
    : undefined;
  const inputTokens = Math.max(1, Math.ceil((JSON.stringify(messages).length + JSON.stringify(body.system ?? '').length) / 4));

  if (tool) {
    const input = sampleInput(tool.input_schema?.properties);
    const json = JSON.stringify(input);
    blocks.push({ type: 'tool_use', id: id('toolu_'), name: tool.name, input, pieces: splitInThree(json) });
    return { blocks, stopReason: 'tool_use', stopSequence: null, inputTokens, outputTokens: outputTokens + 3 };
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
  return { blocks, stopReason, stopSequence, inputTokens, outputTokens: outputTokens + pieces.length };
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

function usage(input: number, output: number, cacheRead: number): Record<string, number> {
  return { input_tokens: input, output_tokens: output, cache_creation_input_tokens: 0, cache_read_input_tokens: cacheRead };
}

async function streamAnswer(res: ServerResponse, ctx: SimContext, plan: Plan, model: string, cacheRead: number): Promise<void> {
  const faults = ctx.faults as AnthropicSimFaults;
  const signal = ctx.abortSignal;
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'request-id': id('req_') });
  const send = (type: string, data: unknown): void => { res.write(`event: ${type}\ndata: ${JSON.stringify(data)}\n\n`); };

  send('message_start', {
    type: 'message_start',
    message: { id: id('msg_'), type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: usage(plan.inputTokens, 1, cacheRead) },
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

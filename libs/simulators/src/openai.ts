import { randomUUID } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import { openAIImages, simImageFile } from './openai-images.ts';
import { readJsonBody, sendJson, simText, simToken, sleep, startSimServer, type SimContext, type SimOptions, type Simulator } from './sim.ts';

export type OpenAISimulatorFlavor = 'vllm' | 'openai';

export interface OpenAISimulatorOptions extends SimOptions {
  /** Which server to imitate: vLLM's OpenAI-compatible server (default) or OpenAI's API. */
  flavor?: OpenAISimulatorFlavor;
  /** When set, `/v1/*` requires `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** vllm flavor: this many `reasoning_content` tokens before the answer, as with `--reasoning-parser`. */
  reasoningTokens?: number;
  /** vllm flavor: errors in the flat shape of vLLM before 0.10.1 (`{"object":"error","message",…}`). */
  legacyErrors?: boolean;
}

type Json = Record<string, unknown>;
type SendError = (res: ServerResponse, status: number, message: string, extra?: ErrorExtra) => void;
interface ErrorExtra { code?: string | null; param?: string | null; headers?: Record<string, string> }

interface Answer {
  reasoning: string[];
  /** Text tokens, or pieces of the JSON answer. */
  content: string[];
  toolCall?: { id: string; name: string; argumentPieces: string[] };
  finishReason: 'stop' | 'length' | 'tool_calls';
  promptTokens: number;
  completionTokens: number;
}

const VLLM_VERSION = '0.11.0';
const MAX_MODEL_LEN = 32768;
const EMBEDDING_DIMS = 8;
const FINGERPRINT = 'fp_sim0001';
const SSE_HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' };

/**
 * An OpenAI Chat Completions server on 127.0.0.1, in the wire format of vLLM (default) or of OpenAI:
 * `/v1/chat/completions` (JSON and SSE, tools, JSON mode), `/v1/embeddings`, `/v1/models`, and for vLLM
 * `/health`, `/version`, `/load`. Honours every SimFault on the two generation endpoints.
 */
export async function startOpenAISimulator(options: OpenAISimulatorOptions = {}): Promise<Simulator> {
  const flavor = options.flavor ?? 'vllm';
  const reasoningTokens = flavor === 'vllm' ? (options.reasoningTokens ?? 0) : 0;
  const sendError: SendError = (res, status, message, extra = {}) =>
    sendJson(res, status, errorBody(flavor, options.legacyErrors === true, status, message, extra), extra.headers);
  const created = Math.floor(Date.now() / 1000);
  let inFlight = 0;

  return startSimServer(options, async (req, res, ctx) => {
    const path = (req.url ?? '/').split('?', 1)[0]!;
    if (flavor === 'vllm' && req.method === 'GET') {
      if (path === '/health') { res.writeHead(200, { 'content-length': 0 }); res.end(); return; }
      if (path === '/version') return sendJson(res, 200, { version: VLLM_VERSION });
      if (path === '/load') return sendJson(res, 200, { server_load: inFlight });
    }
    if (flavor === 'openai' && req.method === 'GET' && simImageFile(path, res)) return;
    if (options.apiKey !== undefined && path.startsWith('/v1/') && req.headers.authorization !== `Bearer ${options.apiKey}`) {
      return sendUnauthorized(res, flavor, req, sendError);
    }
    const route = `${req.method} ${path}`;
    // OpenAI's images API (openai flavor); the files its dall-e URLs point at need no key.
    if (flavor === 'openai' && req.method === 'POST' && (path === '/v1/images/generations' || path === '/v1/images/edits')) {
      return openAIImages(req, res, ctx, path, sendError, `http://${req.headers.host ?? '127.0.0.1'}`);
    }
    if (route === 'GET /v1/models') return sendJson(res, 200, modelList(flavor, ctx.options.models, created));
    if (route !== 'POST /v1/chat/completions' && route !== 'POST /v1/embeddings') {
      return sendError(res, 404, flavor === 'openai' ? `Invalid URL (${req.method} ${path})` : 'Not Found');
    }

    inFlight++;
    res.once('close', () => inFlight--);
    let body: unknown;
    try {
      body = await readJsonBody(req);
    } catch {
      return sendError(res, 400, flavor === 'openai'
        ? 'We could not parse the JSON body of your request. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.'
        : 'JSON decode error');
    }
    ctx.record.body = body;
    const fault = ctx.drawStatusFault();
    if (fault) {
      const headers: Record<string, string> = fault.retryAfterSeconds === undefined ? {} : { 'retry-after': String(fault.retryAfterSeconds) };
      return sendError(res, fault.status, faultMessage(flavor, fault.status), { code: flavor === 'openai' && fault.status === 429 ? 'rate_limit_exceeded' : null, headers });
    }
    if (!isObject(body)) return sendError(res, 400, 'The request body must be a JSON object.');
    const model = resolveModel(flavor, body, ctx.options.models);
    if (model === undefined) return sendError(res, 400, 'you must provide a model parameter', { param: 'model' });
    if (!ctx.options.models.includes(model)) {
      return flavor === 'openai'
        ? sendError(res, 404, `The model \`${model}\` does not exist or you do not have access to it.`, { code: 'model_not_found' })
        : sendError(res, 404, `The model \`${model}\` does not exist.`, { param: 'model' });
    }
    if (path === '/v1/embeddings') return embeddings(res, ctx, flavor, body, model, sendError);
    return chatCompletions(res, ctx, flavor, body, model, reasoningTokens, sendError);
  });
}

// ---- chat completions -------------------------------------------------------------------------

async function chatCompletions(res: ServerResponse, ctx: SimContext, flavor: OpenAISimulatorFlavor, body: Json, model: string, reasoningTokens: number, sendError: SendError): Promise<void> {
  if (!Array.isArray(body.messages)) {
    return flavor === 'openai'
      ? sendError(res, 400, "Missing required parameter: 'messages'.", { param: 'messages', code: 'missing_required_parameter' })
      : sendError(res, 400, "[{'type': 'missing', 'loc': ('body', 'messages'), 'msg': 'Field required'}]", { param: 'messages' });
  }
  // Both servers reject stream_options on a non-streaming request.
  if (body.stream_options != null && body.stream !== true) {
    return sendError(res, 400, flavor === 'openai'
      ? "The 'stream_options' parameter is only allowed when 'stream' is enabled."
      : 'Stream options can only be defined when `stream=True`.', { param: 'stream_options' });
  }
  const answer = planAnswer(body, body.messages as unknown[], ctx.options.tokens, reasoningTokens);
  const includeUsage = isObject(body.stream_options) && body.stream_options.include_usage === true;
  const reply = { id: `chatcmpl-${randomUUID().replaceAll('-', '')}`, created: Math.floor(Date.now() / 1000), model };
  if (body.stream === true) return streamAnswer(res, ctx, flavor, reply, answer, includeUsage);

  const { faults, abortSignal } = ctx;
  await sleep((faults.stallBeforeFirstTokenMs ?? 0) + ctx.options.tokenIntervalMs * answer.completionTokens, abortSignal);
  if (abortSignal.aborted) return;
  if (faults.dropAfterChunks !== undefined) { res.destroy(); return; }
  if (faults.malformedAfterChunks !== undefined) {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{not json');
    return;
  }
  const content = answer.toolCall ? null : answer.content.join('');
  const toolCalls = answer.toolCall
    ? [{ id: answer.toolCall.id, type: 'function', function: { name: answer.toolCall.name, arguments: answer.toolCall.argumentPieces.join('') } }]
    : undefined;
  const choice = flavor === 'openai'
    ? { index: 0, message: { role: 'assistant', content, refusal: null, annotations: [], ...(toolCalls && { tool_calls: toolCalls }) }, logprobs: null, finish_reason: answer.finishReason }
    : {
        index: 0,
        message: { role: 'assistant', content, refusal: null, annotations: null, audio: null, function_call: null, tool_calls: toolCalls ?? [], reasoning_content: answer.reasoning.length ? answer.reasoning.join('') : null },
        logprobs: null, finish_reason: answer.finishReason, stop_reason: null,
      };
  sendJson(res, 200, flavor === 'openai'
    ? { id: reply.id, object: 'chat.completion', created: reply.created, model, choices: [choice], usage: usage(flavor, answer), service_tier: 'default', system_fingerprint: FINGERPRINT }
    : { id: reply.id, object: 'chat.completion', created: reply.created, model, choices: [choice], service_tier: null, system_fingerprint: null, usage: usage(flavor, answer), prompt_logprobs: null, kv_transfer_params: null });
}

async function streamAnswer(res: ServerResponse, ctx: SimContext, flavor: OpenAISimulatorFlavor, reply: { id: string; created: number; model: string }, answer: Answer, includeUsage: boolean): Promise<void> {
  const { faults, abortSignal } = ctx;
  // OpenAI puts `usage: null` on every chunk when usage was asked for; vLLM leaves unset fields out.
  const envelope = flavor === 'openai'
    ? (choices: unknown[], usageValue: unknown = null) => ({ id: reply.id, object: 'chat.completion.chunk', created: reply.created, model: reply.model, service_tier: 'default', system_fingerprint: FINGERPRINT, choices, ...(includeUsage && { usage: usageValue }) })
    : (choices: unknown[], usageValue?: unknown) => ({ id: reply.id, object: 'chat.completion.chunk', created: reply.created, model: reply.model, choices, ...(usageValue !== undefined && { usage: usageValue }) });
  const write = (delta: Json, finishReason: string | null = null): void => {
    const choice = flavor === 'vllm' && finishReason
      ? { index: 0, delta, logprobs: null, finish_reason: finishReason, stop_reason: null }
      : { index: 0, delta, logprobs: null, finish_reason: finishReason };
    res.write(`data: ${JSON.stringify(envelope([choice]))}\n\n`);
  };

  res.writeHead(200, SSE_HEADERS);
  res.flushHeaders();
  await sleep(faults.stallBeforeFirstTokenMs ?? 0, abortSignal);
  if (abortSignal.aborted) return;

  const deltas: Json[] = answer.reasoning.map((piece) => ({ reasoning_content: piece }));
  const call = answer.toolCall;
  if (call) {
    const header = { index: 0, id: call.id, type: 'function', function: { name: call.name, arguments: '' } };
    if (flavor === 'openai') write({ role: 'assistant', content: null, tool_calls: [header], refusal: null });
    else { write({ role: 'assistant', content: '' }); write({ tool_calls: [header] }); }
    for (const piece of call.argumentPieces) deltas.push({ tool_calls: [{ index: 0, function: { arguments: piece } }] });
  } else {
    write(flavor === 'openai' ? { role: 'assistant', content: '', refusal: null } : { role: 'assistant', content: '' });
    for (const piece of answer.content) deltas.push({ content: piece });
  }

  for (let written = 0; ; written++) {
    if (written === faults.dropAfterChunks) {
      // Let the chunks already written reach the client first, as when a server dies mid-answer.
      await new Promise((resolve) => setImmediate(resolve));
      res.destroy();
      return;
    }
    if (written === faults.malformedAfterChunks) res.write('data: {not json\n\n');
    const delta = deltas[written];
    if (delta === undefined) break;
    if (written > 0) await sleep(ctx.options.tokenIntervalMs, abortSignal);
    if (abortSignal.aborted) return;
    write(delta);
  }

  write(flavor === 'openai' ? {} : { content: '' }, answer.finishReason);
  if (includeUsage) res.write(`data: ${JSON.stringify(envelope([], usage(flavor, answer)))}\n\n`);
  res.end('data: [DONE]\n\n');
}

function planAnswer(body: Json, messages: unknown[], tokens: number, reasoningTokens: number): Answer {
  const promptTokens = countPromptTokens(messages);
  const reasoning = Array.from({ length: reasoningTokens }, (_, i) => simToken(i));
  const tool = pickTool(body, messages);
  if (tool) {
    const args = JSON.stringify(sampleObject(tool.parameters));
    const argumentPieces = splitPieces(args, Math.max(3, tokens));
    return { reasoning, content: [], toolCall: { id: `call_${randomUUID().replaceAll('-', '').slice(0, 24)}`, name: tool.name, argumentPieces }, finishReason: 'tool_calls', promptTokens, completionTokens: reasoningTokens + argumentPieces.length };
  }
  const format = isObject(body.response_format) ? body.response_format : undefined;
  if (format?.type === 'json_object' || format?.type === 'json_schema') {
    const schema = isObject(format.json_schema) ? format.json_schema.schema : undefined;
    const json = JSON.stringify(format.type === 'json_schema' ? sampleObject(schema) : { answer: simText(tokens) });
    const content = splitPieces(json, tokens);
    return { reasoning, content, finishReason: 'stop', promptTokens, completionTokens: reasoningTokens + content.length };
  }
  const limit = firstNumber(body.max_completion_tokens, body.max_tokens);
  const count = limit === undefined ? tokens : Math.max(0, Math.min(tokens, limit));
  const content = Array.from({ length: count }, (_, i) => simToken(i));
  return { reasoning, content, finishReason: count < tokens ? 'length' : 'stop', promptTokens, completionTokens: reasoningTokens + count };
}

/** The tool the model "decides" to call: only right after a user turn, never with tool_choice 'none'. */
function pickTool(body: Json, messages: unknown[]): { name: string; parameters: unknown } | undefined {
  if (!Array.isArray(body.tools) || body.tools.length === 0 || body.tool_choice === 'none') return undefined;
  const last = messages.at(-1);
  if (!isObject(last) || last.role !== 'user') return undefined;
  const functions = body.tools.map((t: unknown) => (isObject(t) && isObject(t.function) ? t.function : {}));
  const named = isObject(body.tool_choice) && isObject(body.tool_choice.function) ? body.tool_choice.function.name : undefined;
  const fn = functions.find((f) => named !== undefined && f.name === named) ?? functions[0]!;
  return { name: String(fn.name ?? 'tool'), parameters: fn.parameters };
}

/** A value that satisfies a JSON schema's required properties, with simple values. */
function sampleObject(schema: unknown): Json {
  const out: Json = {};
  if (!isObject(schema) || !Array.isArray(schema.required)) return out;
  const properties = isObject(schema.properties) ? schema.properties : {};
  for (const key of schema.required) out[String(key)] = sampleValue(properties[String(key)]);
  return out;
}

function sampleValue(schema: unknown): unknown {
  if (!isObject(schema)) return 'sim';
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return schema.enum[0];
  switch (Array.isArray(schema.type) ? schema.type[0] : schema.type) {
    case 'integer': case 'number': return 1;
    case 'boolean': return true;
    case 'array': return [];
    case 'object': return sampleObject(schema);
    case 'null': return null;
    default: return 'sim';
  }
}

function usage(flavor: OpenAISimulatorFlavor, answer: Answer): Json {
  const { promptTokens, completionTokens } = answer;
  return flavor === 'openai'
    ? {
        prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens,
        prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
        completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
      }
    : { prompt_tokens: promptTokens, total_tokens: promptTokens + completionTokens, completion_tokens: completionTokens };
}

/** Prompt tokens: the words of every text in the messages (deterministic, close enough for accounting tests). */
function countPromptTokens(messages: unknown[]): number {
  let words = 0;
  for (const m of messages) {
    if (!isObject(m)) continue;
    if (typeof m.content === 'string') words += countWords(m.content);
    else if (Array.isArray(m.content)) for (const part of m.content) if (isObject(part) && typeof part.text === 'string') words += countWords(part.text);
  }
  return words;
}

// ---- embeddings and models --------------------------------------------------------------------

async function embeddings(res: ServerResponse, ctx: SimContext, flavor: OpenAISimulatorFlavor, body: Json, model: string, sendError: SendError): Promise<void> {
  const inputs = embeddingInputs(body.input);
  if (!inputs) return sendError(res, 400, flavor === 'openai' ? "Missing required parameter: 'input'." : 'Field required: input', { param: 'input' });
  await sleep(ctx.faults.stallBeforeFirstTokenMs ?? 0, ctx.abortSignal);
  if (ctx.abortSignal.aborted) return;
  const base64 = body.encoding_format === 'base64';
  let promptTokens = 0;
  const data = inputs.map((text, index) => {
    promptTokens += countWords(text);
    const vector = embeddingVector(text);
    return { object: 'embedding', index, embedding: base64 ? Buffer.from(new Float32Array(vector).buffer).toString('base64') : vector };
  });
  sendJson(res, 200, flavor === 'openai'
    ? { object: 'list', data, model, usage: { prompt_tokens: promptTokens, total_tokens: promptTokens } }
    : { id: `embd-${randomUUID().replaceAll('-', '')}`, object: 'list', created: Math.floor(Date.now() / 1000), model, data, usage: { prompt_tokens: promptTokens, total_tokens: promptTokens, completion_tokens: 0, prompt_tokens_details: null } });
}

/** Inputs as strings: a string, strings, or token arrays (keyed by their JSON). */
function embeddingInputs(input: unknown): string[] | undefined {
  if (typeof input === 'string') return [input];
  if (!Array.isArray(input) || input.length === 0) return undefined;
  if (input.every((x) => typeof x === 'number')) return [JSON.stringify(input)];
  return input.map((x) => (typeof x === 'string' ? x : JSON.stringify(x)));
}

/** 8 deterministic dimensions from an FNV-1a hash; multiples of 1/16, so exact in float32 (base64) too. */
export function embeddingVector(text: string): number[] {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  const vector: number[] = [];
  for (let d = 0; d < EMBEDDING_DIMS; d++) vector.push(((hash >>> (d * 4)) & 15) / 16 - 0.5);
  return vector;
}

function modelList(flavor: OpenAISimulatorFlavor, models: string[], created: number): Json {
  return {
    object: 'list',
    data: models.map((id) => flavor === 'openai'
      ? { id, object: 'model', created, owned_by: 'openai' }
      : { id, object: 'model', created, owned_by: 'vllm', root: id, parent: null, max_model_len: MAX_MODEL_LEN }),
  };
}

// ---- errors -----------------------------------------------------------------------------------

function errorBody(flavor: OpenAISimulatorFlavor, legacy: boolean, status: number, message: string, extra: ErrorExtra): Json {
  const param = extra.param ?? null;
  if (flavor === 'openai') return { error: { message, type: openaiErrorType(status), param, code: extra.code ?? null } };
  const type = status === 400 ? 'BadRequestError' : status === 404 ? 'NotFoundError' : status === 500 ? 'InternalServerError' : (STATUS_CODES[status] ?? 'Error');
  return legacy ? { object: 'error', message, type, param, code: status } : { error: { message, type, param, code: status } };
}

function openaiErrorType(status: number): string {
  if (status === 429) return 'requests';
  return status >= 500 ? 'server_error' : 'invalid_request_error';
}

function faultMessage(flavor: OpenAISimulatorFlavor, status: number): string {
  if (flavor === 'openai') {
    if (status === 429) return 'Rate limit reached for requests. Please try again later.';
    if (status === 500) return 'The server had an error while processing your request. Sorry about that!';
    if (status === 503) return 'The engine is currently overloaded, please try again later.';
  }
  return STATUS_CODES[status] ?? `status ${status}`;
}

function sendUnauthorized(res: ServerResponse, flavor: OpenAISimulatorFlavor, req: IncomingMessage, sendError: SendError): void {
  if (flavor === 'vllm') return sendJson(res, 401, { error: 'Unauthorized' });
  const presented = req.headers.authorization?.replace(/^Bearer\s+/i, '');
  if (!presented) {
    return sendError(res, 401, "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).");
  }
  // OpenAI echoes a masked key; the backend must not pass even that on.
  const masked = presented.length > 8 ? `${presented.slice(0, 3)}${'*'.repeat(presented.length - 7)}${presented.slice(-4)}` : '***';
  sendError(res, 401, `Incorrect API key provided: ${masked}. You can find your API key at https://platform.openai.com/account/api-keys.`, { code: 'invalid_api_key' });
}

// ---- small helpers ----------------------------------------------------------------------------

function resolveModel(flavor: OpenAISimulatorFlavor, body: Json, models: string[]): string | undefined {
  if (typeof body.model === 'string') return body.model;
  // vLLM serves its first model when the request names none; OpenAI requires one.
  return flavor === 'vllm' ? models[0] : undefined;
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function firstNumber(...values: unknown[]): number | undefined {
  for (const v of values) if (typeof v === 'number') return v;
  return undefined;
}

function countWords(text: string): number {
  let words = 0;
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const space = text.charCodeAt(i) <= 32;
    if (!space && !inWord) words++;
    inWord = !space;
  }
  return words;
}

/** Splits text into up to `count` pieces of (nearly) equal length, as a streamed answer arrives. */
function splitPieces(text: string, count: number): string[] {
  const size = Math.max(1, Math.ceil(text.length / count));
  const pieces: string[] = [];
  for (let i = 0; i < text.length; i += size) pieces.push(text.slice(i, i + size));
  return pieces;
}

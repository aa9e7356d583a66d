import { randomUUID } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import {
  FINGERPRINT, SSE_HEADERS, countWords, firstNumber, isObject, sampleObject, splitPieces, words,
  type ErrorExtra, type Json, type OpenAISimulatorFlavor, type SendError,
} from './openai-common.ts';
import { ResponsesStore, handleResponsesRequest, handleStoredResponse } from './openai-responses.ts';
import { openAIImages, simImageFile } from './openai-images.ts';
import { readJsonBody, sendJson, simText, simToken, sleep, startSimServer, type SimContext, type SimOptions, type Simulator } from './sim.ts';

export type { OpenAISimulatorFlavor } from './openai-common.ts';

export interface OpenAISimulatorOptions extends SimOptions {
  /** Which server to imitate: vLLM's OpenAI-compatible server (default) or OpenAI's API. */
  flavor?: OpenAISimulatorFlavor;
  /** When set, `/v1/*` requires `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** vllm flavor: this many `reasoning_content` tokens before the answer, as with `--reasoning-parser`. */
  reasoningTokens?: number;
  /** vllm flavor: errors in the flat shape of vLLM before 0.10.1 (`{"object":"error","message",…}`). */
  legacyErrors?: boolean;
  /** openai flavor: models that are chat-only, which `/v1/completions` refuses as OpenAI does its chat models. */
  chatOnlyModels?: string[];
}

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
const VOCABULARY = 32000;
/** Routes that read a body and honour the simulator's faults (and /tokenize, which reads a body). */
const BODY_ROUTES: Record<OpenAISimulatorFlavor, ReadonlySet<string>> = {
  vllm: new Set(['POST /v1/chat/completions', 'POST /v1/embeddings', 'POST /v1/completions', 'POST /tokenize']),
  openai: new Set(['POST /v1/chat/completions', 'POST /v1/embeddings', 'POST /v1/completions', 'POST /v1/responses']),
};

/**
 * An OpenAI-compatible server on 127.0.0.1, in the wire format of vLLM (default) or of OpenAI:
 * `/v1/chat/completions` (JSON and SSE, tools, JSON mode, `n` choices), `/v1/completions` (prompt
 * lists, echo, logprobs, `n`; `suffix` at OpenAI, refused by vLLM as vLLM does), `/v1/embeddings`,
 * `/v1/models`; for vLLM `/health`, `/version`, `/load`, `/tokenize`; for OpenAI `/v1/responses`
 * (JSON and its semantic SSE events, function calls, `store`, `previous_response_id`) and
 * `GET|DELETE /v1/responses/{id}`, `GET /v1/responses/{id}/input_items`. Honours every SimFault on
 * the generation endpoints, and records each request's body bytes.
 */
export async function startOpenAISimulator(options: OpenAISimulatorOptions = {}): Promise<Simulator> {
  const flavor = options.flavor ?? 'vllm';
  const reasoningTokens = flavor === 'vllm' ? (options.reasoningTokens ?? 0) : 0;
  const sendError: SendError = (res, status, message, extra = {}) =>
    sendJson(res, status, errorBody(flavor, options.legacyErrors === true, status, message, extra), extra.headers);
  const created = Math.floor(Date.now() / 1000);
  const stored = new ResponsesStore();
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
    if (flavor === 'openai' && path.startsWith('/v1/responses/')) return handleStoredResponse(req, res, stored, sendError);
    if (!BODY_ROUTES[flavor].has(route)) {
      return sendError(res, 404, flavor === 'openai' ? `Invalid URL (${req.method} ${path})` : 'Not Found');
    }

    // vLLM's /load counts the generation requests in flight, not tokenizer calls.
    if (route !== 'POST /tokenize') {
      inFlight++;
      res.once('close', () => inFlight--);
    }
    let body: unknown;
    try {
      body = await readJsonBody(req, ctx.record);
    } catch {
      return sendError(res, 400, flavor === 'openai'
        ? 'We could not parse the JSON body of your request. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.'
        : 'JSON decode error');
    }
    ctx.record.body = body;
    if (route !== 'POST /tokenize') {
      const fault = ctx.drawStatusFault();
      if (fault) {
        const headers: Record<string, string> = fault.retryAfterSeconds === undefined ? {} : { 'retry-after': String(fault.retryAfterSeconds) };
        return sendError(res, fault.status, faultMessage(flavor, fault.status), { code: flavor === 'openai' && fault.status === 429 ? 'rate_limit_exceeded' : null, headers });
      }
    }
    if (!isObject(body)) return sendError(res, 400, 'The request body must be a JSON object.');
    const model = resolveModel(flavor, body, ctx.options.models);
    if (model === undefined) return sendError(res, 400, flavor === 'openai' ? "Missing required parameter: 'model'." : 'you must provide a model parameter', { param: 'model' });
    if (!ctx.options.models.includes(model)) {
      return flavor === 'openai'
        ? sendError(res, 404, `The model \`${model}\` does not exist or you do not have access to it.`, { code: 'model_not_found' })
        : sendError(res, 404, `The model \`${model}\` does not exist.`, { param: 'model' });
    }
    switch (path) {
      case '/v1/embeddings': return embeddings(res, ctx, flavor, body, model, sendError);
      case '/v1/completions':
        if (flavor === 'openai' && options.chatOnlyModels?.includes(model)) {
          return sendError(res, 404, 'This is a chat model and not supported in the v1/completions endpoint. Did you mean to use v1/chat/completions?');
        }
        return completions(res, ctx, flavor, body, model, sendError);
      case '/tokenize': return tokenize(res, body, sendError);
      case '/v1/responses': return handleResponsesRequest(res, ctx, body, model, stored, sendError);
      default: return chatCompletions(res, ctx, flavor, body, model, reasoningTokens, sendError);
    }
  });
}

// ---- chat completions -------------------------------------------------------------------------

/** Sampling fields of vLLM (and Ollama, Anthropic) that OpenAI's chat completions refuse. */
const OPENAI_UNRECOGNIZED = ['top_k', 'min_p', 'repetition_penalty'];

async function chatCompletions(res: ServerResponse, ctx: SimContext, flavor: OpenAISimulatorFlavor, body: Json, model: string, reasoningTokens: number, sendError: SendError): Promise<void> {
  if (!Array.isArray(body.messages)) {
    return flavor === 'openai'
      ? sendError(res, 400, "Missing required parameter: 'messages'.", { param: 'messages', code: 'missing_required_parameter' })
      : sendError(res, 400, "[{'type': 'missing', 'loc': ('body', 'messages'), 'msg': 'Field required'}]", { param: 'messages' });
  }
  // Both servers reject stream_options on a non-streaming request.
  if (body.stream_options != null && body.stream !== true) return sendStreamOptionsError(res, flavor, sendError);
  // OpenAI refuses the sampling fields it does not have (vLLM takes them).
  const unrecognized = flavor === 'openai' ? OPENAI_UNRECOGNIZED.find((field) => field in body) : undefined;
  if (unrecognized) return sendError(res, 400, `Unrecognized request argument supplied: ${unrecognized}`);
  const n = choiceCount(body.n);
  if (n === undefined) return sendError(res, 400, flavor === 'openai' ? "Invalid 'n': integer below minimum value. Expected a value >= 1." : 'n must be at least 1.', { param: 'n' });
  const answers = Array.from({ length: n }, () => planAnswer(body, body.messages as unknown[], ctx.options.tokens, reasoningTokens));
  const includeUsage = isObject(body.stream_options) && body.stream_options.include_usage === true;
  const reply = { id: `chatcmpl-${randomUUID().replaceAll('-', '')}`, created: Math.floor(Date.now() / 1000), model };
  if (body.stream === true) return streamAnswer(res, ctx, flavor, reply, answers, includeUsage);

  const { faults, abortSignal } = ctx;
  await sleep((faults.stallBeforeFirstTokenMs ?? 0) + ctx.options.tokenIntervalMs * answers[0]!.completionTokens, abortSignal);
  if (abortSignal.aborted) return;
  if (faults.dropAfterChunks !== undefined) { res.destroy(); return; }
  if (faults.malformedAfterChunks !== undefined) {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{not json');
    return;
  }
  const choices = answers.map((answer, index) => chatChoice(flavor, answer, index));
  const usageValue = usage(flavor, answers[0]!.promptTokens, sum(answers.map((a) => a.completionTokens)));
  sendJson(res, 200, flavor === 'openai'
    ? { id: reply.id, object: 'chat.completion', created: reply.created, model, choices, usage: usageValue, service_tier: 'default', system_fingerprint: FINGERPRINT }
    : { id: reply.id, object: 'chat.completion', created: reply.created, model, choices, service_tier: null, system_fingerprint: null, usage: usageValue, prompt_logprobs: null, kv_transfer_params: null });
}

function chatChoice(flavor: OpenAISimulatorFlavor, answer: Answer, index: number): Json {
  const content = answer.toolCall ? null : answer.content.join('');
  const toolCalls = answer.toolCall
    ? [{ id: answer.toolCall.id, type: 'function', function: { name: answer.toolCall.name, arguments: answer.toolCall.argumentPieces.join('') } }]
    : undefined;
  return flavor === 'openai'
    ? { index, message: { role: 'assistant', content, refusal: null, annotations: [], ...(toolCalls && { tool_calls: toolCalls }) }, logprobs: null, finish_reason: answer.finishReason }
    : {
        index,
        message: { role: 'assistant', content, refusal: null, annotations: null, audio: null, function_call: null, tool_calls: toolCalls ?? [], reasoning_content: answer.reasoning.length ? answer.reasoning.join('') : null },
        logprobs: null, finish_reason: answer.finishReason, stop_reason: null,
      };
}

/** `n` as both servers take it: absent or null is 1; below 1 is refused (undefined). */
function choiceCount(n: unknown): number | undefined {
  if (n === undefined || n === null) return 1;
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 ? n : undefined;
}

async function streamAnswer(res: ServerResponse, ctx: SimContext, flavor: OpenAISimulatorFlavor, reply: { id: string; created: number; model: string }, answers: Answer[], includeUsage: boolean): Promise<void> {
  const { faults, abortSignal } = ctx;
  // OpenAI puts `usage: null` on every chunk when usage was asked for; vLLM leaves unset fields out.
  const envelope = flavor === 'openai'
    ? (choices: unknown[], usageValue: unknown = null) => ({ id: reply.id, object: 'chat.completion.chunk', created: reply.created, model: reply.model, service_tier: 'default', system_fingerprint: FINGERPRINT, choices, ...(includeUsage && { usage: usageValue }) })
    : (choices: unknown[], usageValue?: unknown) => ({ id: reply.id, object: 'chat.completion.chunk', created: reply.created, model: reply.model, choices, ...(usageValue !== undefined && { usage: usageValue }) });
  const write = (index: number, delta: Json, finishReason: string | null = null): void => {
    const choice = flavor === 'vllm' && finishReason
      ? { index, delta, logprobs: null, finish_reason: finishReason, stop_reason: null }
      : { index, delta, logprobs: null, finish_reason: finishReason };
    res.write(`data: ${JSON.stringify(envelope([choice]))}\n\n`);
  };

  res.writeHead(200, SSE_HEADERS);
  res.flushHeaders();
  await sleep(faults.stallBeforeFirstTokenMs ?? 0, abortSignal);
  if (abortSignal.aborted) return;

  // Each choice opens with the role (OpenAI names a tool call there), then its deltas; the choices'
  // deltas interleave token by token, as both servers send them.
  const bodies = answers.map((answer, index) => {
    const deltas: Json[] = answer.reasoning.map((piece) => ({ reasoning_content: piece }));
    const call = answer.toolCall;
    if (call) {
      const header = { index: 0, id: call.id, type: 'function', function: { name: call.name, arguments: '' } };
      if (flavor === 'openai') write(index, { role: 'assistant', content: null, tool_calls: [header], refusal: null });
      else { write(index, { role: 'assistant', content: '' }); deltas.push({ tool_calls: [header] }); }
      for (const piece of call.argumentPieces) deltas.push({ tool_calls: [{ index: 0, function: { arguments: piece } }] });
    } else {
      write(index, flavor === 'openai' ? { role: 'assistant', content: '', refusal: null } : { role: 'assistant', content: '' });
      for (const piece of answer.content) deltas.push({ content: piece });
    }
    return deltas;
  });
  const steps: { index: number; delta: Json }[] = [];
  for (let step = 0; step < Math.max(...bodies.map((b) => b.length)); step++) {
    for (const [index, deltas] of bodies.entries()) if (deltas[step]) steps.push({ index, delta: deltas[step]! });
  }

  if (!(await writeSteps(res, ctx, steps.length, (i) => write(steps[i]!.index, steps[i]!.delta)))) return;
  for (const [index, answer] of answers.entries()) write(index, flavor === 'openai' ? {} : { content: '' }, answer.finishReason);
  if (includeUsage) res.write(`data: ${JSON.stringify(envelope([], usage(flavor, answers[0]!.promptTokens, sum(answers.map((a) => a.completionTokens)))))}\n\n`);
  res.end('data: [DONE]\n\n');
}

/**
 * Writes `count` content chunks with the token interval between them, applying the drop and
 * malformed-line faults. False when the answer ended early (dropped, or the client left).
 */
async function writeSteps(res: ServerResponse, ctx: SimContext, count: number, writeStep: (i: number) => void): Promise<boolean> {
  const { faults, abortSignal } = ctx;
  const dropAt = ctx.drawDrop(count);
  for (let written = 0; ; written++) {
    if (written === dropAt) {
      // Let the chunks already written reach the client first, as when a server dies mid-answer.
      await new Promise((resolve) => setImmediate(resolve));
      res.destroy();
      return false;
    }
    if (written === faults.malformedAfterChunks) res.write('data: {not json\n\n');
    if (written >= count) return true;
    if (written > 0) await sleep(ctx.options.tokenIntervalMs, abortSignal);
    if (abortSignal.aborted) return false;
    writeStep(written);
  }
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

function usage(flavor: OpenAISimulatorFlavor, promptTokens: number, completionTokens: number): Json {
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
  return sum(messages.map((m) => promptWords(m).length));
}

function promptWords(message: unknown): string[] {
  if (!isObject(message)) return [];
  if (typeof message.content === 'string') return words(message.content);
  if (!Array.isArray(message.content)) return [];
  return message.content.flatMap((part: unknown) => (isObject(part) && typeof part.text === 'string' ? words(part.text) : []));
}

function sendStreamOptionsError(res: ServerResponse, flavor: OpenAISimulatorFlavor, sendError: SendError): void {
  sendError(res, 400, flavor === 'openai'
    ? "The 'stream_options' parameter is only allowed when 'stream' is enabled."
    : 'Stream options can only be defined when `stream=True`.', { param: 'stream_options' });
}

// ---- legacy completions -----------------------------------------------------------------------

interface CompletionPrompt { text: string; tokens: string[] }

/**
 * `/v1/completions`: one choice per prompt and `n` (index = prompt × n + choice), `echo` puts the
 * prompt before the text, `logprobs` gives each token's log probability and its top alternatives.
 * vLLM refuses `suffix` ("suffix is not currently supported", in every version to date); OpenAI
 * takes it (its answer is the middle that fits before the suffix).
 */
async function completions(res: ServerResponse, ctx: SimContext, flavor: OpenAISimulatorFlavor, body: Json, model: string, sendError: SendError): Promise<void> {
  const prompts = completionPrompts(body.prompt);
  if (!prompts) {
    return flavor === 'openai'
      ? sendError(res, 400, "Missing required parameter: 'prompt'.", { param: 'prompt', code: 'missing_required_parameter' })
      : sendError(res, 400, 'Either prompt or prompt_embeds must be provided and non-empty.');
  }
  if (flavor === 'vllm' && body.suffix != null) return sendError(res, 400, 'suffix is not currently supported');
  if (body.stream_options != null && body.stream !== true) return sendStreamOptionsError(res, flavor, sendError);
  const n = choiceCount(body.n);
  if (n === undefined) return sendError(res, 400, flavor === 'openai' ? "Invalid 'n': integer below minimum value. Expected a value >= 1." : 'n must be at least 1.', { param: 'n' });
  const maxTokens = typeof body.max_tokens === 'number' ? body.max_tokens : 16;
  const count = Math.max(0, Math.min(ctx.options.tokens, maxTokens));
  const generated = Array.from({ length: count }, (_, i) => simToken(i));
  const finishReason = count < ctx.options.tokens ? 'length' : 'stop';
  const echo = body.echo === true;
  const topLogprobs = typeof body.logprobs === 'number' ? body.logprobs : undefined;
  const promptTokens = sum(prompts.map((p) => p.tokens.length));
  const completionTokens = prompts.length * n * count;
  const reply = { id: `cmpl-${randomUUID().replaceAll('-', '')}`, created: Math.floor(Date.now() / 1000), model };
  const includeUsage = isObject(body.stream_options) && body.stream_options.include_usage === true;
  const choices = prompts.flatMap((prompt) => Array.from({ length: n }, () => prompt));

  if (body.stream === true) {
    return streamCompletion(res, ctx, flavor, reply, { choices, generated, finishReason, echo, topLogprobs, includeUsage, usage: usage(flavor, promptTokens, completionTokens) });
  }
  const { faults, abortSignal } = ctx;
  await sleep((faults.stallBeforeFirstTokenMs ?? 0) + ctx.options.tokenIntervalMs * count, abortSignal);
  if (abortSignal.aborted) return;
  if (faults.dropAfterChunks !== undefined) { res.destroy(); return; }
  const data = choices.map((prompt, index) => {
    const tokens = echo ? [...prompt.tokens, ...generated] : generated;
    const text = (echo ? prompt.text : '') + generated.join('');
    const logprobs = topLogprobs === undefined ? null : completionLogprobs(flavor, tokens, topLogprobs, 0, echo ? prompt.tokens.length : 0);
    return flavor === 'openai'
      ? { text, index, logprobs, finish_reason: finishReason }
      : { index, text, logprobs, finish_reason: finishReason, stop_reason: null, prompt_logprobs: null };
  });
  const usageValue = flavor === 'openai'
    ? { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens }
    : { ...usage(flavor, promptTokens, completionTokens), prompt_tokens_details: null };
  sendJson(res, 200, flavor === 'openai'
    ? { id: reply.id, object: 'text_completion', created: reply.created, model, choices: data, usage: usageValue }
    : { id: reply.id, object: 'text_completion', created: reply.created, model, choices: data, service_tier: null, system_fingerprint: null, usage: usageValue, kv_transfer_params: null });
}

interface CompletionPlan {
  choices: CompletionPrompt[];
  generated: string[];
  finishReason: string;
  echo: boolean;
  topLogprobs: number | undefined;
  includeUsage: boolean;
  usage: Json;
}

async function streamCompletion(res: ServerResponse, ctx: SimContext, flavor: OpenAISimulatorFlavor, reply: { id: string; created: number; model: string }, plan: CompletionPlan): Promise<void> {
  const chunk = (choices: Json[], usageValue?: unknown): string => {
    const body = flavor === 'openai'
      ? { id: reply.id, object: 'text_completion', created: reply.created, choices, model: reply.model, ...(plan.includeUsage && { usage: usageValue ?? null }) }
      : { id: reply.id, object: 'text_completion', created: reply.created, model: reply.model, choices, ...(usageValue !== undefined && { usage: usageValue }) };
    return `data: ${JSON.stringify(body)}\n\n`;
  };
  const offsets = plan.choices.map(() => 0);
  const piece = (index: number, step: number): Json => {
    const prompt = plan.choices[index]!;
    // The first piece of an echo carries the whole prompt; vLLM marks the last piece with the finish reason.
    const tokens = [...(plan.echo && step === 0 ? prompt.tokens : []), ...(step < plan.generated.length ? [plan.generated[step]!] : [])];
    const text = (plan.echo && step === 0 ? prompt.text : '') + (plan.generated[step] ?? '');
    const logprobs = plan.topLogprobs === undefined ? null : completionLogprobs(flavor, tokens, plan.topLogprobs, offsets[index]!, plan.echo && step === 0 ? prompt.tokens.length : 0);
    offsets[index]! += text.length;
    const last = step >= plan.generated.length - 1;
    return flavor === 'openai'
      ? { text, index, logprobs, finish_reason: null }
      : { index, text, logprobs, finish_reason: last ? plan.finishReason : null, stop_reason: null, prompt_token_ids: null, token_ids: null };
  };
  const steps = Math.max(1, plan.generated.length);
  const order = Array.from({ length: steps * plan.choices.length }, (_, i) => ({ step: Math.floor(i / plan.choices.length), index: i % plan.choices.length }));

  res.writeHead(200, SSE_HEADERS);
  res.flushHeaders();
  await sleep(ctx.faults.stallBeforeFirstTokenMs ?? 0, ctx.abortSignal);
  if (ctx.abortSignal.aborted) return;
  if (!(await writeSteps(res, ctx, order.length, (i) => res.write(chunk([piece(order[i]!.index, order[i]!.step)]))))) return;
  // OpenAI ends each choice with an empty piece that carries the finish reason.
  if (flavor === 'openai') for (const index of plan.choices.keys()) res.write(chunk([{ text: '', index, logprobs: null, finish_reason: plan.finishReason }]));
  if (plan.includeUsage) res.write(chunk([], plan.usage));
  res.end('data: [DONE]\n\n');
}

/** The prompts of a completion request: a string, strings, a token list or token lists. */
function completionPrompts(prompt: unknown): CompletionPrompt[] | undefined {
  const fromText = (text: string): CompletionPrompt => ({ text, tokens: text.split(/(?=\s)/).filter(Boolean) });
  const fromTokens = (ids: number[]): CompletionPrompt => {
    const tokens = ids.map((id) => simToken(id));
    return { text: tokens.join(''), tokens };
  };
  if (typeof prompt === 'string') return [fromText(prompt)];
  if (!Array.isArray(prompt) || prompt.length === 0) return undefined;
  if (prompt.every((p) => typeof p === 'string')) return prompt.map(fromText);
  if (prompt.every((p) => typeof p === 'number')) return [fromTokens(prompt)];
  if (prompt.every((p) => Array.isArray(p) && p.every((id) => typeof id === 'number'))) return (prompt as number[][]).map(fromTokens);
  return undefined;
}

/**
 * Log probabilities in the completions shape. The first `promptTokens` tokens are an echoed prompt:
 * the first of them has no log probability, as in both servers. vLLM lists the sampled token and the
 * top `k` (k + 1 entries); OpenAI the top `k`.
 */
function completionLogprobs(flavor: OpenAISimulatorFlavor, tokens: string[], k: number, offset: number, promptTokens: number): Json {
  const textOffset: number[] = [];
  let at = offset;
  for (const token of tokens) { textOffset.push(at); at += token.length; }
  const logprob = (i: number) => -0.25 * ((i % 4) + 1);
  const tops = tokens.map((token, i) => {
    if (promptTokens > 0 && i === 0) return null;
    const entries: [string, number][] = [[token, logprob(i)]];
    for (let j = 1; j < (flavor === 'vllm' ? k + 1 : k); j++) entries.push([`${token}~${j}`, logprob(i) - j]);
    return Object.fromEntries(entries);
  });
  return {
    text_offset: textOffset,
    token_logprobs: tokens.map((_, i) => (promptTokens > 0 && i === 0 ? null : logprob(i))),
    tokens,
    top_logprobs: tops,
  };
}

// ---- vLLM's tokenizer endpoint ----------------------------------------------------------------

/**
 * vLLM's `POST /tokenize`: `{prompt}` or `{messages}` (counted as the chat endpoint counts its
 * prompt tokens; with `tools`, vLLM ≥ 0.10 renders them into the template too: here, the words of
 * their JSON) → `{count, max_model_len, tokens, token_strs}`.
 */
function tokenize(res: ServerResponse, body: Json, sendError: SendError): void {
  let pieces: string[];
  if (typeof body.prompt === 'string') pieces = words(body.prompt);
  else if (Array.isArray(body.messages)) pieces = [...body.messages.flatMap(promptWords), ...(Array.isArray(body.tools) ? words(JSON.stringify(body.tools)) : [])];
  else return sendError(res, 400, "[{'type': 'missing', 'loc': ('body', 'prompt'), 'msg': 'Field required'}]");
  const tokens = pieces.map(tokenId);
  sendJson(res, 200, { count: tokens.length, max_model_len: MAX_MODEL_LEN, tokens, token_strs: body.return_token_strs === true ? pieces : null });
}

/** A word's token id: deterministic, within a 32k vocabulary. */
function tokenId(word: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < word.length; i++) hash = Math.imul(hash ^ word.charCodeAt(i), 0x01000193);
  return (hash >>> 0) % VOCABULARY;
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
  if (flavor === 'openai') return { error: { message, type: extra.type ?? openaiErrorType(status), param, code: extra.code ?? null } };
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

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

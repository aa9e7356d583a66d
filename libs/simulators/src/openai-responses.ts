import type { IncomingMessage, ServerResponse } from 'node:http';
import { SSE_HEADERS, hexId, isObject, sampleObject, splitPieces, words, type Json, type SendError } from './openai-common.ts';
import { sendJson, simText, simToken, sleep, type SimContext } from './sim.ts';

/*
 * OpenAI's Responses API as the simulator's openai flavor serves it: `POST /v1/responses` (a JSON
 * Response, or the semantic SSE events with sequence numbers and no [DONE]), function calls,
 * `text.format`, `max_output_tokens`, `reasoning`, and the stored responses OpenAI keeps by default
 * (`store`), which `previous_response_id` continues and `GET|DELETE /v1/responses/{id}` and
 * `GET /v1/responses/{id}/input_items` read.
 */

/** What OpenAI keeps of a stored response: the Response and every input item it answered. */
interface StoredEntry { response: Json; input: Json[] }

export class ResponsesStore {
  readonly #entries = new Map<string, StoredEntry>();
  get(id: string): StoredEntry | undefined { return this.#entries.get(id); }
  set(id: string, entry: StoredEntry): void { this.#entries.set(id, entry); }
  delete(id: string): boolean { return this.#entries.delete(id); }
}

const INPUT_ITEM_TYPES = [
  'message', 'function_call', 'function_call_output', 'reasoning', 'item_reference', 'file_search_call', 'computer_call',
  'computer_call_output', 'web_search_call', 'tool_search_call', 'tool_search_output', 'additional_tools', 'configuration_update',
  'compaction', 'compaction_trigger', 'image_generation_call', 'code_interpreter_call', 'local_shell_call', 'local_shell_call_output',
  'shell_call', 'shell_call_output', 'apply_patch_call', 'apply_patch_call_output', 'mcp_list_tools', 'mcp_approval_request',
  'mcp_approval_response', 'mcp_call', 'custom_tool_call', 'custom_tool_call_output', 'program', 'program_output',
];

interface Plan {
  reasoning: boolean;
  text: string[];
  call?: { name: string; argumentPieces: string[] };
  incomplete: boolean;
  inputTokens: number;
  outputTokens: number;
  reasoningTokens: number;
}

/** `POST /v1/responses` once the model was checked. */
export async function handleResponsesRequest(res: ServerResponse, ctx: SimContext, body: Json, model: string, store: ResponsesStore, sendError: SendError): Promise<void> {
  const own = inputItems(body.input);
  if ('invalid' in own) return sendError(res, 400, own.invalid.message, { param: own.invalid.param, code: 'invalid_value' });
  let earlier: Json[] = [];
  if (body.previous_response_id != null) {
    const previous = typeof body.previous_response_id === 'string' ? store.get(body.previous_response_id) : undefined;
    if (!previous) {
      return sendError(res, 400, `Previous response with id '${String(body.previous_response_id)}' not found.`, { param: 'previous_response_id', code: 'previous_response_not_found' });
    }
    earlier = [...previous.input, ...(previous.response.output as Json[])];
  }
  const context = [...earlier, ...own.items];
  const plan = planResponse(body, context, ctx.options.tokens);
  const id = `resp_${hexId(48)}`;
  const shell = responseShell(id, model, body);
  const items = plannedItems(plan);
  const output = Object.values(items);
  const final = { ...shell, status: plan.incomplete ? 'incomplete' : 'completed', incomplete_details: plan.incomplete ? { reason: 'max_output_tokens' } : null, output, usage: usageOf(plan) };
  if (body.store !== false) store.set(id, { response: final, input: context });

  if (body.stream === true) return streamResponse(res, ctx, { shell, plan, items, final });
  const { faults, abortSignal } = ctx;
  await sleep((faults.stallBeforeFirstTokenMs ?? 0) + ctx.options.tokenIntervalMs * plan.outputTokens, abortSignal);
  if (abortSignal.aborted) return;
  if (faults.dropAfterChunks !== undefined) { res.destroy(); return; }
  sendJson(res, 200, final);
}

/** `GET /v1/responses/{id}`, `DELETE /v1/responses/{id}`, `GET /v1/responses/{id}/input_items`. */
export function handleStoredResponse(req: IncomingMessage, res: ServerResponse, store: ResponsesStore, sendError: SendError): void {
  const url = new URL(req.url ?? '/', 'http://sim');
  const [id, tail] = url.pathname.slice('/v1/responses/'.length).split('/');
  const entry = id ? store.get(id) : undefined;
  if (!entry || (tail !== undefined && tail !== 'input_items')) {
    if (tail !== undefined && tail !== 'input_items') return sendError(res, 404, `Invalid URL (${req.method} ${url.pathname})`);
    return sendError(res, 404, `Response with id '${id ?? ''}' not found.`);
  }
  if (req.method === 'DELETE' && tail === undefined) {
    store.delete(id!);
    return sendJson(res, 200, { id, object: 'response.deleted', deleted: true });
  }
  if (req.method !== 'GET') return sendError(res, 404, `Invalid URL (${req.method} ${url.pathname})`);
  if (tail === undefined) return sendJson(res, 200, entry.response);
  const limit = Number(url.searchParams.get('limit') ?? 20);
  if (!Number.isInteger(limit) || limit < 1 || limit > 100) return sendError(res, 400, "Invalid 'limit': integer out of range.", { param: 'limit', code: 'invalid_value' });
  const order = url.searchParams.get('order') ?? 'desc';
  const items = order === 'asc' ? entry.input : [...entry.input].reverse();
  const after = url.searchParams.get('after');
  const from = after ? items.findIndex((item) => item.id === after) + 1 : 0;
  const data = items.slice(from, from + limit);
  sendJson(res, 200, { object: 'list', data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: from + limit < items.length });
}

type Invalid = { invalid: { param: string; message: string } };

/** The request's input as stored items (with ids), or what OpenAI would refuse in it. */
function inputItems(input: unknown): { items: Json[] } | Invalid {
  const invalid = (param: string, message: string): Invalid => ({ invalid: { param, message } });
  if (input === undefined || input === null) return { items: [] };
  if (typeof input === 'string') return { items: [message('user', [{ type: 'input_text', text: input }])] };
  if (!Array.isArray(input)) return invalid('input', `Invalid type for 'input': expected one of a string or array of input items, but got ${typeof input} instead.`);
  const items: Json[] = [];
  for (const [index, item] of input.entries()) {
    if (!isObject(item)) return invalid(`input[${index}]`, `Invalid type for 'input[${index}]': expected an input item, but got ${typeof item} instead.`);
    const type = typeof item.type === 'string' ? item.type : 'role' in item ? 'message' : 'item_reference';
    if (!INPUT_ITEM_TYPES.includes(type)) {
      return invalid(`input[${index}].type`, `Invalid value: '${type}'. Supported values are: ${INPUT_ITEM_TYPES.map((t) => `'${t}'`).join(', ')}.`);
    }
    if (type !== 'message') { items.push({ id: `${prefixOf(type)}_${hexId(48)}`, ...item, type }); continue; }
    const role = String(item.role);
    const content = typeof item.content === 'string'
      ? [role === 'assistant' ? { type: 'output_text', text: item.content, annotations: [] } : { type: 'input_text', text: item.content }]
      : item.content;
    items.push(typeof item.id === 'string' ? { ...message(role, content as Json[]), id: item.id } : message(role, content as Json[]));
  }
  return { items };
}

function message(role: string, content: Json[]): Json {
  return { id: `msg_${hexId(48)}`, type: 'message', status: 'completed', content, role };
}

function prefixOf(type: string): string {
  return type === 'function_call' ? 'fc' : type === 'function_call_output' ? 'fco' : type === 'reasoning' ? 'rs' : 'item';
}

/** What the model "does": call a function right after a user turn when it has function tools, else answer in text. */
function planResponse(body: Json, context: Json[], tokens: number): Plan {
  const inputTokens = words(typeof body.instructions === 'string' ? body.instructions : '').length + context.reduce((n, item) => n + itemWords(item), 0);
  const reasoningEffort = isObject(body.reasoning) ? body.reasoning.effort : undefined;
  const reasoning = typeof reasoningEffort === 'string' && reasoningEffort !== 'none';
  const reasoningTokens = reasoning ? 2 : 0;
  const limit = typeof body.max_output_tokens === 'number' ? body.max_output_tokens : undefined;
  const tool = pickFunctionTool(body, context);
  if (tool) {
    const argumentPieces = splitPieces(JSON.stringify(sampleObject(tool.parameters)), Math.max(3, tokens));
    return { reasoning, text: [], call: { name: tool.name, argumentPieces }, incomplete: false, inputTokens, outputTokens: reasoningTokens + argumentPieces.length, reasoningTokens };
  }
  const format = isObject(body.text) && isObject(body.text.format) ? body.text.format : undefined;
  if (format?.type === 'json_schema' || format?.type === 'json_object') {
    const text = splitPieces(JSON.stringify(format.type === 'json_schema' ? sampleObject(format.schema) : { answer: simText(tokens) }), tokens);
    return { reasoning, text, incomplete: false, inputTokens, outputTokens: reasoningTokens + text.length, reasoningTokens };
  }
  // Reasoning counts against max_output_tokens, as at OpenAI.
  const count = limit === undefined ? tokens : Math.max(0, Math.min(tokens, limit - reasoningTokens));
  const text = Array.from({ length: count }, (_, i) => simToken(i));
  return { reasoning, text, incomplete: count < tokens, inputTokens, outputTokens: reasoningTokens + count, reasoningTokens };
}

function itemWords(item: Json): number {
  if (typeof item.output === 'string') return words(item.output).length;
  if (!Array.isArray(item.content)) return 0;
  return item.content.reduce((n: number, part: unknown) => n + (isObject(part) && typeof part.text === 'string' ? words(part.text).length : 0), 0);
}

function pickFunctionTool(body: Json, context: Json[]): { name: string; parameters: unknown } | undefined {
  const functions = Array.isArray(body.tools) ? body.tools.filter((t: unknown): t is Json => isObject(t) && t.type === 'function') : [];
  if (functions.length === 0 || body.tool_choice === 'none') return undefined;
  const last = context.at(-1);
  if (!last || last.type !== 'message' || last.role !== 'user') return undefined;
  const named = isObject(body.tool_choice) && body.tool_choice.type === 'function' ? body.tool_choice.name : undefined;
  const fn = functions.find((f) => named !== undefined && f.name === named) ?? functions[0]!;
  return { name: String(fn.name), parameters: fn.parameters };
}

/** The Response without its output: OpenAI's fields in OpenAI's order, the request's settings echoed. */
function responseShell(id: string, model: string, body: Json): Json {
  const text = isObject(body.text) ? body.text : {};
  const reasoning = isObject(body.reasoning) ? body.reasoning : {};
  return {
    id, object: 'response', created_at: Math.floor(Date.now() / 1000), status: 'in_progress', background: false, error: null,
    incomplete_details: null, instructions: body.instructions ?? null, max_output_tokens: body.max_output_tokens ?? null,
    max_tool_calls: null, model, output: [], parallel_tool_calls: body.parallel_tool_calls ?? true,
    previous_response_id: body.previous_response_id ?? null, prompt_cache_key: null,
    reasoning: { effort: reasoning.effort ?? null, summary: reasoning.summary ?? null }, safety_identifier: null,
    service_tier: 'default', store: body.store !== false, temperature: body.temperature ?? 1,
    text: { format: text.format ?? { type: 'text' }, verbosity: text.verbosity ?? 'medium' }, tool_choice: body.tool_choice ?? 'auto',
    tools: Array.isArray(body.tools) ? body.tools.map((t: unknown) => (isObject(t) && t.type === 'function' ? { strict: true, description: null, ...t } : t)) : [],
    top_logprobs: 0, top_p: body.top_p ?? 1, truncation: 'disabled', usage: null, user: body.user ?? null, metadata: body.metadata ?? {},
  };
}

interface PlannedItems { reasoning?: Json; message?: Json; call?: Json }

/** The output items of a plan as they are when done, in output order (made once: the stream and the store agree). */
function plannedItems(plan: Plan): PlannedItems {
  const items: PlannedItems = {};
  if (plan.reasoning) items.reasoning = { id: `rs_${hexId(48)}`, type: 'reasoning', summary: [] };
  if (plan.call) {
    items.call = { id: `fc_${hexId(48)}`, type: 'function_call', status: 'completed', arguments: plan.call.argumentPieces.join(''), call_id: `call_${hexId(24)}`, name: plan.call.name };
  } else {
    const text = plan.text.join('');
    items.message = { id: `msg_${hexId(48)}`, type: 'message', status: plan.incomplete ? 'incomplete' : 'completed', content: [{ type: 'output_text', annotations: [], logprobs: [], text }], role: 'assistant' };
  }
  return items;
}

function usageOf(plan: Plan): Json {
  return {
    input_tokens: plan.inputTokens, input_tokens_details: { cached_tokens: 0 },
    output_tokens: plan.outputTokens, output_tokens_details: { reasoning_tokens: plan.reasoningTokens },
    total_tokens: plan.inputTokens + plan.outputTokens,
  };
}

/** The Responses event stream of a plan, in OpenAI's order, each event with `event:` and its sequence number. */
async function streamResponse(res: ServerResponse, ctx: SimContext, answer: { shell: Json; plan: Plan; items: PlannedItems; final: Json }): Promise<void> {
  const { faults, abortSignal } = ctx;
  const { shell, plan, items, final } = answer;
  let sequence = 0;
  const event = (type: string, fields: Json): string => `event: ${type}\ndata: ${JSON.stringify({ type, ...fields, sequence_number: sequence++ })}\n\n`;

  res.writeHead(200, SSE_HEADERS);
  res.flushHeaders();
  res.write(event('response.created', { response: shell }) + event('response.in_progress', { response: shell }));
  await sleep(faults.stallBeforeFirstTokenMs ?? 0, abortSignal);
  if (abortSignal.aborted) return;

  let index = 0;
  if (items.reasoning) {
    res.write(event('response.output_item.added', { output_index: index, item: items.reasoning }) + event('response.output_item.done', { output_index: index, item: items.reasoning }));
    index++;
  }
  // Deltas carry `obfuscation` padding, as OpenAI's do unless stream_options.include_obfuscation is false.
  const deltas: string[] = [];
  if (items.call) {
    const call = items.call;
    res.write(event('response.output_item.added', { output_index: index, item: { ...call, status: 'in_progress', arguments: '' } }));
    for (const piece of plan.call!.argumentPieces) deltas.push(event('response.function_call_arguments.delta', { item_id: call.id, output_index: index, delta: piece, obfuscation: hexId(8) }));
  } else {
    const item = items.message!;
    res.write(event('response.output_item.added', { output_index: index, item: { ...item, status: 'in_progress', content: [] } })
      + event('response.content_part.added', { item_id: item.id, output_index: index, content_index: 0, part: { type: 'output_text', annotations: [], logprobs: [], text: '' } }));
    for (const piece of plan.text) deltas.push(event('response.output_text.delta', { item_id: item.id, output_index: index, content_index: 0, delta: piece, logprobs: [], obfuscation: hexId(8) }));
  }

  for (let written = 0; ; written++) {
    if (written === faults.dropAfterChunks) {
      await new Promise((resolve) => setImmediate(resolve));
      res.destroy();
      return;
    }
    if (written === faults.malformedAfterChunks) res.write('event: response.output_text.delta\ndata: {not json\n\n');
    if (written >= deltas.length) break;
    if (written > 0) await sleep(ctx.options.tokenIntervalMs, abortSignal);
    if (abortSignal.aborted) return;
    res.write(deltas[written]);
  }

  if (items.call) {
    res.write(event('response.function_call_arguments.done', { item_id: items.call.id, output_index: index, arguments: items.call.arguments }));
    res.write(event('response.output_item.done', { output_index: index, item: items.call }));
  } else {
    const item = items.message!;
    const part = (item.content as Json[])[0]!;
    res.write(event('response.output_text.done', { item_id: item.id, output_index: index, content_index: 0, text: part.text, logprobs: [] })
      + event('response.content_part.done', { item_id: item.id, output_index: index, content_index: 0, part })
      + event('response.output_item.done', { output_index: index, item }));
  }
  res.end(event(final.status === 'incomplete' ? 'response.incomplete' : 'response.completed', { response: final }));
}

import type OpenAI from 'openai';
import type { ChatCompletionCreateParamsBase } from 'openai/resources/chat/completions/completions';
import { GatewayError } from '@homelab/bus';
import type { ChatMessage, ChatRequest } from '../types.ts';
import {
  OPENAI_ONLY_ITEM_TYPES,
  type ResponsesContentPart,
  type ResponsesFunctionTool,
  type ResponsesInputItem,
  type ResponsesRequestPayload,
  type ResponsesTextFormat,
  type ResponsesToolChoice,
} from './schema.ts';
import { unsupportedHere } from '../refusals.ts';

/*
 * A Responses request as a chat completion request, for a model whose backend does not speak the
 * Responses API (vLLM, Ollama, Anthropic through their chat translations). `instructions` become the
 * system message; input items become messages (a function_call joins the assistant turn before it
 * as a tool call, a function_call_output becomes a tool message). What only OpenAI can do (its
 * built-in tools and their items, files uploaded to OpenAI, stored prompts) is refused with an
 * `invalid_request` that names the field.
 */

type ChatTool = OpenAI.Chat.Completions.ChatCompletionFunctionTool;
type ChatToolChoice = OpenAI.Chat.Completions.ChatCompletionToolChoiceOption;
type ChatContentPart = OpenAI.Chat.Completions.ChatCompletionContentPart;
type ChatTextPart = OpenAI.Chat.Completions.ChatCompletionContentPartText;
type AssistantMessage = OpenAI.Chat.Completions.ChatCompletionAssistantMessageParam;
type ResponseFormat = NonNullable<ChatRequest['response_format']>;

const OPENAI_ONLY_ITEMS: ReadonlySet<string> = new Set(OPENAI_ONLY_ITEM_TYPES);

/** The Responses request as an internal chat request. Throws GatewayError `invalid_request` for what cannot map. */
export function responsesToChat(body: ResponsesRequestPayload): ChatRequest {
  refuseOpenAIOnlyFeatures(body);
  const messages: ChatMessage[] = [];
  if (body.instructions) messages.push({ role: 'system', content: body.instructions });
  const input: ResponsesInputItem[] = typeof body.input === 'string' ? [{ role: 'user', content: body.input }] : (body.input ?? []);
  for (const [index, item] of input.entries()) addItem(messages, item, `input[${index}]`);
  if (!messages.some((message) => message.role !== 'system')) {
    throw invalid("Missing required parameter: 'input' (a model needs at least one input message to answer)", 'input');
  }

  const request: ChatCompletionCreateParamsBase = { model: body.model, messages };
  if (body.stream === true) request.stream = true;
  const tools = body.tools?.map((tool, index) => chatTool(tool, `tools[${index}]`));
  if (tools?.length) {
    const choice = body.tool_choice === undefined ? undefined : chatToolChoice(body.tool_choice, tools);
    request.tools = choice?.tools ?? tools;
    if (choice) request.tool_choice = choice.choice;
    if (body.parallel_tool_calls != null) request.parallel_tool_calls = body.parallel_tool_calls;
  } else if (body.tool_choice === 'none' || body.tool_choice === 'auto') {
    // Without tools these say nothing; anything else names a tool that is not there.
  } else if (body.tool_choice !== undefined) {
    throw invalid('tool_choice names a tool, but the request has no function tools', 'tool_choice');
  }
  const format = body.text?.format && responseFormat(body.text.format);
  if (format) request.response_format = format;
  if (body.reasoning?.effort != null) request.reasoning_effort = body.reasoning.effort as ChatRequest['reasoning_effort'];
  if (body.max_output_tokens != null) request.max_completion_tokens = body.max_output_tokens;
  if (body.temperature != null) request.temperature = body.temperature;
  if (body.top_p != null) request.top_p = body.top_p;
  if (body.user !== undefined) request.user = body.user;
  const safetyIdentifier = (body as { safety_identifier?: unknown }).safety_identifier;
  if (typeof safetyIdentifier === 'string') request.safety_identifier = safetyIdentifier;
  return request as ChatRequest;
}

/** Request features that live at OpenAI: a request using them cannot go anywhere else. */
function refuseOpenAIOnlyFeatures(body: ResponsesRequestPayload): void {
  const fields = body as Record<string, unknown>;
  if (body.previous_response_id) {
    // The gateway replaces previous_response_id with the stored conversation before a request
    // reaches a translation (store.ts); one still here was not found in the store.
    throw invalid(`Previous response with id '${body.previous_response_id}' not found.`, 'previous_response_id');
  }
  if (fields['conversation'] != null) throw unsupportedHere('conversations are stored at OpenAI: this model cannot continue one; send the input items instead', 'conversation');
  if (fields['prompt'] != null) throw unsupportedHere('prompt templates are stored at OpenAI: this model cannot use one; send instructions and input instead', 'prompt');
  if (fields['background'] === true) throw invalid('background responses run only at OpenAI: this model answers in the foreground (omit background)', 'background');
}

function addItem(messages: ChatMessage[], item: ResponsesInputItem, path: string): void {
  const type = item.type ?? ('role' in item ? 'message' : 'item_reference');
  switch (type) {
    case 'message':
      messages.push(chatMessage(item as Extract<ResponsesInputItem, { role: string }>, path));
      return;
    case 'function_call': {
      const call = item as Extract<ResponsesInputItem, { type: 'function_call' }>;
      const toolCall = { id: call.call_id, type: 'function' as const, function: { name: call.name, arguments: call.arguments } };
      // Parallel calls are one assistant turn in chat: join the turn they follow.
      const last = messages.at(-1);
      if (last?.role === 'assistant') (last.tool_calls ??= []).push(toolCall);
      else messages.push({ role: 'assistant', content: null, tool_calls: [toolCall] });
      return;
    }
    case 'function_call_output': {
      const result = item as Extract<ResponsesInputItem, { type: 'function_call_output' }>;
      messages.push({ role: 'tool', tool_call_id: result.call_id, content: typeof result.output === 'string' ? result.output : textParts(result.output, `${path}.output`, 'a function_call_output') });
      return;
    }
    case 'reasoning':
      // A model's earlier reasoning: chat requests have no place for it, and models do not read it back.
      return;
    case 'item_reference':
      throw unsupportedHere(`${path} is an item_reference: it points to an item stored at OpenAI, which this model cannot read; send the item itself`, path);
    default:
      if (OPENAI_ONLY_ITEMS.has(type)) {
        throw unsupportedHere(`${path} is a '${type}' item: it belongs to OpenAI's built-in tools, which only OpenAI runs; this model cannot take it`, `${path}.type`);
      }
      throw invalid(`${path}.type: unknown input item type '${type}'`, `${path}.type`);
  }
}

function chatMessage(item: Extract<ResponsesInputItem, { role: string }>, path: string): ChatMessage {
  const content = item.content;
  switch (item.role) {
    case 'user':
      return { role: 'user', content: typeof content === 'string' ? content : content.map((part, index) => userPart(part, `${path}.content[${index}]`)) };
    case 'system':
    case 'developer':
      return { role: item.role, content: typeof content === 'string' ? content : textParts(content, `${path}.content`, `a ${item.role} message`) };
    case 'assistant': {
      const message: AssistantMessage = { role: 'assistant', content: '' };
      if (typeof content === 'string') {
        message.content = content;
        return message;
      }
      const texts: string[] = [];
      for (const part of content) {
        if (part.type === 'refusal') message.refusal = part.refusal;
        else if (part.type === 'output_text' || part.type === 'input_text') texts.push(part.text);
        else throw invalid(`${path}: an assistant message holds text (output_text or refusal), not '${part.type}'`, `${path}.content`);
      }
      message.content = texts.join('');
      return message;
    }
    default:
      throw invalid(`${path}.role: unknown role '${String(item.role)}'`, `${path}.role`);
  }
}

function userPart(part: ResponsesContentPart, path: string): ChatContentPart {
  switch (part.type) {
    case 'input_text':
    case 'output_text':
      return { type: 'text', text: part.text };
    case 'refusal':
      return { type: 'text', text: part.refusal };
    case 'input_image': {
      if (!part.image_url) throw unsupportedHere(`${path}: an image by file_id refers to a file uploaded to OpenAI, which this model cannot read; send image_url (a URL or a data: URL)`, `${path}.file_id`);
      const detail = part.detail === 'low' || part.detail === 'high' || part.detail === 'auto' ? part.detail : undefined;
      return { type: 'image_url', image_url: { url: part.image_url, ...(detail && { detail }) } };
    }
    case 'input_file':
      if (!part.file_data) throw unsupportedHere(`${path}: a file by file_id or file_url lives at OpenAI or on the web, which this model cannot read; send file_data`, path);
      return { type: 'file', file: { file_data: part.file_data, ...(part.filename && { filename: part.filename }) } };
    case 'input_audio':
      return { type: 'input_audio', input_audio: part.input_audio as OpenAI.Chat.Completions.ChatCompletionContentPartInputAudio['input_audio'] };
  }
}

/** Text parts only (system messages and tool results in chat take no images). */
function textParts(parts: ResponsesContentPart[], path: string, what: string): ChatTextPart[] {
  return parts.map((part, index) => {
    if (part.type === 'input_text' || part.type === 'output_text') return { type: 'text', text: part.text };
    throw invalid(`${path}[${index}]: ${what} can hold only text in a chat model's request, not '${part.type}'`, `${path}[${index}]`);
  });
}

function chatTool(tool: NonNullable<ResponsesRequestPayload['tools']>[number], path: string): ChatTool {
  if (tool.type !== 'function') {
    throw unsupportedHere(`${path}: '${tool.type}' is one of OpenAI's built-in tools, which only OpenAI runs; this model can call function tools only`, `${path}.type`);
  }
  const { name, description, parameters, strict } = tool as ResponsesFunctionTool;
  return {
    type: 'function',
    function: { name, ...(description != null && { description }), ...(parameters != null && { parameters }), ...(strict != null && { strict }) },
  };
}

function chatToolChoice(choice: ResponsesToolChoice, tools: ChatTool[]): { choice: ChatToolChoice; tools?: ChatTool[] } {
  if (typeof choice === 'string') return { choice };
  if (choice.type === 'function') return { choice: { type: 'function', function: { name: (choice as { name: string }).name } } };
  if (choice.type === 'allowed_tools') {
    // Chat models take a list of tools and a mode: keep only the allowed ones.
    const allowed = (choice as { tools: Record<string, unknown>[] }).tools.map((tool, index) => {
      if (tool['type'] !== 'function' || typeof tool['name'] !== 'string') {
        throw invalid(`tool_choice.tools[${index}]: only function tools can be allowed for this model`, `tool_choice.tools[${index}]`);
      }
      return tool['name'];
    });
    return { choice: (choice as { mode: 'auto' | 'required' }).mode, tools: tools.filter((tool) => allowed.includes(tool.function.name)) };
  }
  throw unsupportedHere(`tool_choice: '${choice.type}' selects one of OpenAI's built-in tools, which only OpenAI runs`, 'tool_choice');
}

function responseFormat(format: ResponsesTextFormat): ResponseFormat | undefined {
  switch (format.type) {
    case 'text':
      return undefined;
    case 'json_object':
      return { type: 'json_object' };
    case 'json_schema': {
      const { name, schema, strict, description } = format as Extract<ResponsesTextFormat, { type: 'json_schema' }>;
      return { type: 'json_schema', json_schema: { name, schema, ...(strict != null && { strict }), ...(description !== undefined && { description }) } };
    }
  }
}

function invalid(message: string, param: string): GatewayError {
  return new GatewayError('invalid_request', message, { param });
}

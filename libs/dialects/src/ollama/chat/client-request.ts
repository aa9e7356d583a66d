import type OpenAI from 'openai';
import { GatewayError } from '@homelab/bus';
import type { ChatMessage, ChatRequest, InternalRequest } from '../../types.ts';
import { imageDataUrl } from '../images.ts';
import { applyOllamaAnswerOptions, samplingFromOptions } from '../options.ts';
import type { OllamaChatBody, OllamaChatBodyMessage } from './schema.ts';

/*
 * An Ollama client's `/api/chat` → OpenAI's chat request (the internal form), for a backend that is
 * not Ollama. Images become data-URL parts, tool calls get ids and string arguments, tool results are
 * matched to the call they answer (Ollama names the tool, OpenAI wants the call's id), `options`
 * become sampling fields. `keep_alive`, `num_ctx`, `truncate` and the other runner options have no
 * meaning on another backend and are dropped (docs/dialects.md).
 */

type ContentPart = OpenAI.Chat.Completions.ChatCompletionContentPart;
type AssistantToolCall = OpenAI.Chat.Completions.ChatCompletionMessageFunctionToolCall;

function invalid(message: string, param: string): GatewayError {
  return new GatewayError('invalid_request', message, { param });
}

/** A tool call the conversation made and no tool message has answered yet. */
interface PendingCall {
  id: string;
  name: string;
}

/** Gives tool calls ids and finds, for each tool message, the call it answers. */
class ToolCallLedger {
  readonly #pending: PendingCall[] = [];

  /** An assistant message's calls in OpenAI's shape: a generated id where Ollama sent none, arguments as JSON text. */
  record(message: OllamaChatBodyMessage, messageIndex: number): AssistantToolCall[] {
    return (message.tool_calls ?? []).map((call, j) => {
      const id = call.id || `call_${messageIndex}_${j}`;
      this.#pending.push({ id, name: call.function.name });
      return { id, type: 'function', function: { name: call.function.name, arguments: JSON.stringify(call.function.arguments ?? {}) } };
    });
  }

  /** The id of the call a tool message answers: by its id, else the oldest open call of that tool, else the oldest open call. */
  answer(message: OllamaChatBodyMessage, at: string): string {
    const byId = message.tool_call_id ? this.#pending.findIndex((call) => call.id === message.tool_call_id) : -1;
    const byName = byId < 0 && message.tool_name ? this.#pending.findIndex((call) => call.name === message.tool_name) : -1;
    const index = byId >= 0 ? byId : byName >= 0 ? byName : this.#pending.length > 0 ? 0 : -1;
    if (index < 0) {
      throw invalid(`${at}: a tool message must answer a tool call of an earlier assistant message (the backend needs the call's id)`, at);
    }
    const [call] = this.#pending.splice(index, 1);
    return call!.id;
  }
}

function userContent(message: OllamaChatBodyMessage, at: string): string | ContentPart[] {
  const text = message.content ?? '';
  if (!message.images?.length) return text;
  const parts: ContentPart[] = text === '' ? [] : [{ type: 'text', text }];
  message.images.forEach((image, i) => parts.push({ type: 'image_url', image_url: { url: imageDataUrl(image, `${at}.images[${i}]`) } }));
  return parts;
}

function toInternalMessage(message: OllamaChatBodyMessage, index: number, ledger: ToolCallLedger): ChatMessage {
  const at = `messages[${index}]`;
  const role = message.role.toLowerCase();
  if (message.images?.length && role !== 'user') throw invalid(`${at}: only user messages can carry images outside Ollama`, `${at}.images`);
  const content = message.content ?? '';
  switch (role) {
    case 'system':
      return { role: 'system', content };
    case 'user':
      return { role: 'user', content: userContent(message, at) };
    case 'assistant': {
      // A previous answer's `thinking` has no place in OpenAI's request: it is dropped.
      const toolCalls = ledger.record(message, index);
      if (toolCalls.length === 0) return { role: 'assistant', content };
      return { role: 'assistant', content: content === '' ? null : content, tool_calls: toolCalls };
    }
    case 'tool':
      return { role: 'tool', tool_call_id: ledger.answer(message, at), content };
    default:
      throw invalid(`${at}.role: '${message.role}' has no equivalent outside Ollama (system, user, assistant, tool)`, `${at}.role`);
  }
}

function toInternalTools(tools: NonNullable<OllamaChatBody['tools']>): OpenAI.Chat.Completions.ChatCompletionTool[] {
  return tools.map((tool, i) => {
    if (tool.type !== 'function') throw invalid(`tools[${i}].type: only 'function' tools exist outside Ollama`, `tools[${i}].type`);
    const fn = tool.function;
    return {
      type: 'function',
      function: {
        name: fn.name,
        ...(fn.description !== undefined && { description: fn.description }),
        parameters: fn.parameters ?? { type: 'object', properties: {} },
      },
    };
  });
}

/** `/api/chat` body → the internal chat request. Throws GatewayError `invalid_request` for what cannot map. */
export function chatRequestToInternal(body: OllamaChatBody): InternalRequest {
  if (!body.messages?.length) {
    // Ollama loads (or unloads) the model for a chat without messages; the gateway answers that itself (ollamaChatShortcut).
    throw invalid('messages is empty: there is nothing to answer', 'messages');
  }
  const ledger = new ToolCallLedger();
  const messages = body.messages.map((message, i) => toInternalMessage(message, i, ledger));
  const request: ChatRequest = { model: body.model, messages, stream: body.stream !== false, ...samplingFromOptions(body.options ?? undefined) };
  if (body.tools?.length) request.tools = toInternalTools(body.tools);
  applyOllamaAnswerOptions(request, body);
  return { form: 'chat', request };
}

import type OpenAI from 'openai';
import { GatewayError } from '@homelab/bus';
import type { ChatMessage, ChatRequest, InternalRequest, PassThroughOptions } from '../../types.ts';
import { base64FromDataUrl } from '../images.ts';
import { ollamaFormatFromResponseFormat, optionsFromSampling, type OllamaExtras } from '../options.ts';
import type { OllamaChatRequest, OllamaKeepAlive, OllamaMessage, OllamaTool, OllamaToolCall } from '../wire.ts';
import { unsupportedHere } from '../../refusals.ts';

/*
 * OpenAI's chat request (the internal form) → Ollama's `/api/chat` body, for an Ollama backend and
 * a client of another dialect. What Ollama cannot take is refused with a clear GatewayError
 * (`invalid_request`): image URLs (Ollama fetches nothing), audio and files, `n > 1`.
 */

type ContentPart = OpenAI.Chat.Completions.ChatCompletionContentPart | OpenAI.Chat.Completions.ChatCompletionContentPartRefusal;

function invalid(message: string, param?: string): GatewayError {
  return new GatewayError('invalid_request', message, param === undefined ? {} : { param });
}

/** Text parts joined by newlines; `image_url` parts must be base64 data URLs, since Ollama cannot fetch URLs. */
function readContent(content: string | readonly ContentPart[] | null | undefined, at: string): { text: string; images?: string[] } {
  if (content == null) return { text: '' };
  if (typeof content === 'string') return { text: content };
  const texts: string[] = [];
  let images: string[] | undefined;
  for (const part of content) {
    switch (part.type) {
      case 'text': texts.push(part.text); break;
      case 'refusal': texts.push(part.refusal); break;
      case 'image_url': {
        const base64 = base64FromDataUrl(part.image_url.url);
        if (base64 === undefined) {
          throw invalid('Ollama cannot fetch image URLs: send the image inline as a base64 data URL (data:image/png;base64,...)', `${at}.content`);
        }
        (images ??= []).push(base64);
        break;
      }
      default: throw invalid(`content part type '${part.type}' is not supported by Ollama`, `${at}.content`);
    }
  }
  return images ? { text: texts.join('\n'), images } : { text: texts.join('\n') };
}

function toOllamaToolCalls(calls: NonNullable<OpenAI.Chat.Completions.ChatCompletionAssistantMessageParam['tool_calls']>, at: string, names: Map<string, string>): OllamaToolCall[] {
  return calls.map((call, i) => {
    if (call.type !== 'function') throw invalid('custom tool calls are not supported by Ollama', `${at}.tool_calls`);
    names.set(call.id, call.function.name);
    let args: unknown;
    try {
      args = call.function.arguments === '' ? {} : JSON.parse(call.function.arguments);
    } catch {
      throw invalid(`tool call arguments are not valid JSON (${call.function.name})`, `${at}.tool_calls[${i}].function.arguments`);
    }
    if (args === null || typeof args !== 'object' || Array.isArray(args)) throw invalid(`tool call arguments must be a JSON object (${call.function.name})`, `${at}.tool_calls[${i}].function.arguments`);
    return { id: call.id, function: { name: call.function.name, arguments: args as Record<string, unknown> } };
  });
}

function toOllamaMessage(message: ChatMessage, at: string, toolNames: Map<string, string>): OllamaMessage {
  switch (message.role) {
    case 'system':
    case 'developer':
      return { role: 'system', content: readContent(message.content, at).text };
    case 'user': {
      const { text, images } = readContent(message.content, at);
      return images ? { role: 'user', content: text, images } : { role: 'user', content: text };
    }
    case 'assistant': {
      const out: OllamaMessage = { role: 'assistant', content: readContent(message.content, at).text };
      if (message.tool_calls?.length) out.tool_calls = toOllamaToolCalls(message.tool_calls, at, toolNames);
      return out;
    }
    case 'tool': {
      const out: OllamaMessage = { role: 'tool', content: readContent(message.content, at).text, tool_call_id: message.tool_call_id };
      const name = toolNames.get(message.tool_call_id);
      if (name !== undefined) out.tool_name = name;
      return out;
    }
    case 'function':
      return { role: 'tool', content: message.content ?? '', tool_name: message.name };
    default:
      throw invalid(`unknown message role '${(message as { role: string }).role}'`, `${at}.role`);
  }
}

function toOllamaTools(tools: readonly OpenAI.Chat.Completions.ChatCompletionTool[]): OllamaTool[] {
  return tools.map((tool, i) => {
    if (tool.type !== 'function') throw invalid('custom tools are not supported by Ollama', `tools[${i}]`);
    const fn = tool.function;
    return {
      type: 'function',
      function: {
        name: fn.name,
        ...(fn.description !== undefined && { description: fn.description }),
        // Ollama requires a parameters object; OpenAI lets a tool take none.
        parameters: fn.parameters ?? { type: 'object', properties: {} },
      },
    };
  });
}

/** OpenAI chat request → Ollama `/api/chat` body. Throws GatewayError invalid_request for what Ollama cannot take. */
export function toOllamaChatRequest(request: ChatRequest, settings: { stream: boolean; keepAlive?: OllamaKeepAlive }): OllamaChatRequest {
  if (request.n != null && request.n > 1) throw unsupportedHere('Ollama returns one choice per request: n must be 1', 'n');
  const toolNames = new Map<string, string>();
  const out: OllamaChatRequest = {
    model: request.model,
    messages: request.messages.map((m, i) => toOllamaMessage(m, `messages[${i}]`, toolNames)),
    stream: settings.stream,
  };

  // Ollama has no tool_choice: 'none' is honoured by not offering the tools.
  if (request.tools?.length && request.tool_choice !== 'none') out.tools = toOllamaTools(request.tools);

  const format = ollamaFormatFromResponseFormat(request.response_format);
  if (format !== undefined) out.format = format;

  const options = optionsFromSampling(request);
  if (options) out.options = options;

  const extras = request as ChatRequest & OllamaExtras;
  const keepAlive = extras.keep_alive ?? settings.keepAlive;
  if (keepAlive !== undefined) out.keep_alive = keepAlive;
  if (extras.think !== undefined) out.think = extras.think;
  return out;
}

/** The lab's `keep_alive` default for an Ollama backend, from the pass-through options' `defaults`. */
export function keepAliveDefault(options: PassThroughOptions): OllamaKeepAlive | undefined {
  const value = options.defaults?.['keep_alive'];
  return typeof value === 'string' || typeof value === 'number' ? value : undefined;
}

/** `requestFromInternal` of `ollama.chat`: an internal chat request as the `/api/chat` body for the backend's model. */
export function chatRequestFromInternal(internal: InternalRequest, options: PassThroughOptions): Record<string, unknown> {
  if (internal.form !== 'chat') throw new TypeError(`ollama.chat carries chat requests, not ${internal.form}`);
  const keepAlive = keepAliveDefault(options);
  const body = toOllamaChatRequest({ ...internal.request, model: options.model }, keepAlive === undefined ? { stream: options.stream } : { stream: options.stream, keepAlive });
  return body as unknown as Record<string, unknown>;
}

import type {
  DocumentBlockParam,
  ImageBlockParam,
  SearchResultBlockParam,
  TextBlockParam,
  ToolResultBlockParam,
  ToolUseBlockParam,
} from '@anthropic-ai/sdk/resources/messages';
import type OpenAI from 'openai';
import { GatewayError } from '@homelab/bus';
import type { ChatMessage, ChatRequest, InternalRequest } from '../types.ts';
import type { CountTokensRequestPayload, MessagesRequestPayload } from './schema.ts';

/*
 * Anthropic Messages request → internal (OpenAI chat) request: for an Anthropic client (Claude Code,
 * the Anthropic SDK) whose model is served by vLLM, Ollama or OpenAI. What has no equivalent is
 * dropped where it only tunes Anthropic's service (cache_control, service_tier, container, …), and
 * refused with a clear invalid_request where the answer would be wrong without it (server tools,
 * Anthropic-defined tools, Files API sources). docs/dialects.md has the table.
 */

type ContentPart = OpenAI.Chat.Completions.ChatCompletionContentPart;
type TextPart = OpenAI.Chat.Completions.ChatCompletionContentPartText;
type ToolCall = OpenAI.Chat.Completions.ChatCompletionMessageFunctionToolCall;
type ChatTool = OpenAI.Chat.Completions.ChatCompletionFunctionTool;

/** The internal request with the fields vLLM and Ollama take beside OpenAI's. */
export type ChatRequestWithExtras = ChatRequest & { top_k?: number };

/** A content block as it arrives: a known type, or one only Anthropic reads. */
interface Block {
  type: string;
  [field: string]: unknown;
}

/** What a Messages request and a token count request share: the prompt. */
type Prompt = Pick<CountTokensRequestPayload, 'model' | 'messages' | 'system' | 'tools' | 'tool_choice' | 'thinking'>;

/** Anthropic tool types that run on Anthropic's servers, by the name their `type` starts with. */
const SERVER_TOOLS = ['web_search', 'web_fetch', 'code_execution', 'tool_search_tool', 'mcp_toolset'];

/** The OpenAI reasoning effort nearest a thinking budget (the inverse of ANTHROPIC_THINKING_BUDGETS). */
export function effortForBudget(budgetTokens: number): 'low' | 'medium' | 'high' {
  if (budgetTokens < 2048) return 'low';
  if (budgetTokens < 8192) return 'medium';
  return 'high';
}

/** The Messages request in the internal form. Throws GatewayError `invalid_request` for what cannot map. */
export function anthropicRequestToInternal(body: MessagesRequestPayload): InternalRequest {
  if (body.max_tokens === 0) {
    throw invalid('max_tokens 0 only warms Anthropic\'s prompt cache; this model is not served by Anthropic: ask for at least 1 token', 'max_tokens');
  }
  const mcpServers = (body as Record<string, unknown>)['mcp_servers'];
  if (Array.isArray(mcpServers) && mcpServers.length > 0) {
    throw invalid('mcp_servers (the MCP connector) runs on Anthropic\'s servers and this model is not served by Anthropic: connect the MCP servers in the client instead', 'mcp_servers');
  }
  const request: ChatRequestWithExtras = { ...anthropicPromptToChat(body), max_completion_tokens: body.max_tokens };
  if (body.stop_sequences?.length) request.stop = body.stop_sequences;
  if (body.temperature !== undefined) request.temperature = body.temperature;
  if (body.top_p !== undefined) request.top_p = body.top_p;
  if (body.top_k !== undefined && body.top_k > 0) request.top_k = body.top_k;
  const userId = body.metadata?.user_id;
  if (typeof userId === 'string' && userId !== '') request.user = userId;
  if (body.stream !== undefined) request.stream = body.stream;
  addOutputConfig(request, body.output_config);
  return { form: 'chat', request };
}

/**
 * The prompt of a Messages or token count request as a chat request: system, turns, tools, tool
 * choice and thinking. The worker also sends it to vLLM's `/tokenize` to count a prompt's tokens.
 */
export function anthropicPromptToChat(body: Prompt): ChatRequest {
  const messages: ChatMessage[] = [];
  const system = body.system === undefined ? '' : systemText(body.system);
  if (system) messages.push({ role: 'system', content: system });
  for (const [i, turn] of body.messages.entries()) addTurn(turn as { role: string; content: string | Block[] }, `messages[${i}]`, messages);

  const request: ChatRequest = { model: body.model, messages };
  if (body.tools?.length) {
    request.tools = body.tools.map((tool, i) => toChatTool(tool as Block, `tools[${i}]`));
    addToolChoice(request, body.tool_choice);
  }
  const thinking = body.thinking as Block | undefined;
  if (thinking?.type === 'enabled' && typeof thinking['budget_tokens'] === 'number') {
    request.reasoning_effort = effortForBudget(thinking['budget_tokens']);
  }
  return request;
}

/** Anthropic's system prompt is a string or text blocks; the blocks become paragraphs of one prompt. */
function systemText(system: string | ReadonlyArray<{ text: string }>): string {
  if (typeof system === 'string') return system;
  return system.map((block) => block.text).filter((text) => text !== '').join('\n\n');
}

function addTurn(turn: { role: string; content: string | Block[] }, at: string, messages: ChatMessage[]): void {
  if (turn.role === 'system') {
    const text = typeof turn.content === 'string' ? turn.content : systemText(turn.content as unknown as TextBlockParam[]);
    if (text) messages.push({ role: 'system', content: text });
    return;
  }
  if (turn.role === 'assistant') return addAssistantTurn(turn.content, at, messages);
  addUserTurn(turn.content, at, messages);
}

/**
 * A user turn: tool results become `tool` messages (OpenAI wants them right after the assistant's
 * tool calls, as Anthropic wants them first in the turn), the rest one user message.
 */
function addUserTurn(content: string | Block[], at: string, messages: ChatMessage[]): void {
  if (typeof content === 'string') {
    messages.push({ role: 'user', content });
    return;
  }
  const parts: ContentPart[] = [];
  for (const [j, block] of content.entries()) {
    const where = `${at}.content[${j}]`;
    if (block.type === 'tool_result') {
      const { message, images } = toolMessage(block as unknown as ToolResultBlockParam, where);
      messages.push(message);
      // A tool message carries text only: images a tool returned (a screenshot, a file read) follow in the user message.
      parts.push(...images);
    } else {
      parts.push(...userParts(block, where));
    }
  }
  if (parts.length === 0) return;
  const only = parts[0];
  messages.push({ role: 'user', content: parts.length === 1 && only?.type === 'text' ? only.text : parts });
}

function addAssistantTurn(content: string | Block[], at: string, messages: ChatMessage[]): void {
  if (typeof content === 'string') {
    if (content !== '') messages.push({ role: 'assistant', content });
    return;
  }
  let text = '';
  const toolCalls: ToolCall[] = [];
  for (const [j, block] of content.entries()) {
    const where = `${at}.content[${j}]`;
    switch (block.type) {
      case 'text':
        text += (block as unknown as TextBlockParam).text;
        break;
      case 'tool_use': {
        const use = block as unknown as ToolUseBlockParam;
        toolCalls.push({ id: use.id, type: 'function', function: { name: use.name, arguments: JSON.stringify(use.input ?? {}) } });
        break;
      }
      case 'thinking':
      case 'redacted_thinking':
        // Earlier reasoning is not sent back: local models' chat templates drop it from the history,
        // and its signature means something to Anthropic only.
        break;
      default:
        throw unsupportedBlock(block, where);
    }
  }
  if (text === '' && toolCalls.length === 0) return;
  messages.push({ role: 'assistant', content: text === '' ? null : text, ...(toolCalls.length > 0 && { tool_calls: toolCalls }) });
}

/** A user block as OpenAI content parts. */
function userParts(block: Block, at: string): ContentPart[] {
  switch (block.type) {
    case 'text':
      return [{ type: 'text', text: (block as unknown as TextBlockParam).text }];
    case 'image':
      return [imagePart(block as unknown as ImageBlockParam, at)];
    case 'document':
      return documentParts(block as unknown as DocumentBlockParam, at);
    case 'search_result':
      return [{ type: 'text', text: searchResultText(block as unknown as SearchResultBlockParam) }];
    case 'tool_use':
      throw invalid('tool_use blocks belong in assistant turns', `${at}.type`);
    case 'thinking':
    case 'redacted_thinking':
      throw invalid(`${block.type} blocks belong in assistant turns`, `${at}.type`);
    default:
      throw unsupportedBlock(block, at);
  }
}

function imagePart(block: ImageBlockParam, at: string): ContentPart {
  const source = block.source;
  if (source.type === 'base64') return { type: 'image_url', image_url: { url: `data:${source.media_type};base64,${source.data}` } };
  if (source.type === 'url') return { type: 'image_url', image_url: { url: source.url } };
  throw invalid('image blocks with a file source (Anthropic\'s Files API) need Anthropic; this model is not served by Anthropic: send the image as base64 or a URL', `${at}.source`);
}

/**
 * Documents: plain text and content-block documents are read as text (with their title and context
 * first); a base64 PDF becomes OpenAI's `file` part, which OpenAI reads (other backends refuse it).
 */
function documentParts(block: DocumentBlockParam, at: string): ContentPart[] {
  const source = block.source;
  const heading = [block.title, block.context].filter((line): line is string => typeof line === 'string' && line !== '').join('\n');
  const withHeading = (text: string): TextPart => ({ type: 'text', text: heading ? `${heading}\n\n${text}` : text });
  switch (source.type) {
    case 'text':
      return [withHeading(source.data)];
    case 'content': {
      if (typeof source.content === 'string') return [withHeading(source.content)];
      const parts: ContentPart[] = heading ? [{ type: 'text', text: heading }] : [];
      for (const [k, inner] of source.content.entries()) parts.push(...userParts(inner as unknown as Block, `${at}.source.content[${k}]`));
      return parts;
    }
    case 'base64':
      return [{ type: 'file', file: { file_data: `data:${source.media_type};base64,${source.data}`, filename: block.title ?? 'document.pdf' } }];
    default:
      throw invalid(`document blocks with a ${source.type} source need Anthropic; this model is not served by Anthropic: send the document as text or base64`, `${at}.source`);
  }
}

function searchResultText(block: SearchResultBlockParam): string {
  return [block.title, block.source, ...block.content.map((text) => text.text)].filter((line) => line !== '').join('\n');
}

/** A tool result as a `tool` message; an error result says so, as OpenAI has no `is_error`. */
function toolMessage(block: ToolResultBlockParam, at: string): { message: ChatMessage; images: ContentPart[] } {
  const texts: string[] = [];
  const images: ContentPart[] = [];
  const content = block.content ?? '';
  if (typeof content === 'string') texts.push(content);
  else {
    for (const [k, inner] of content.entries()) {
      for (const part of userParts(inner as unknown as Block, `${at}.content[${k}]`)) {
        if (part.type === 'text') texts.push(part.text);
        else images.push(part);
      }
    }
  }
  const text = texts.join('\n');
  return { message: { role: 'tool', tool_call_id: block.tool_use_id, content: block.is_error ? `Error: ${text}` : text }, images };
}

function toChatTool(tool: Block, at: string): ChatTool {
  const type = tool.type;
  if (type !== undefined && type !== null && type !== 'custom') {
    const name = typeof tool['name'] === 'string' ? `'${tool['name']}' ` : '';
    if (SERVER_TOOLS.some((prefix) => String(type).startsWith(prefix))) {
      throw invalid(`the server tool ${name}(${String(type)}) runs on Anthropic's servers, and this model is not served by Anthropic: use a Claude model, or define the tool yourself with an input_schema`, `${at}.type`);
    }
    throw invalid(`the tool ${name}(${String(type)}) is defined by Anthropic and only Claude models know its schema; this model is not served by Anthropic: define it as a custom tool with an input_schema`, `${at}.type`);
  }
  const fn: ChatTool['function'] = { name: tool['name'] as string, parameters: tool['input_schema'] as Record<string, unknown> };
  if (typeof tool['description'] === 'string') fn.description = tool['description'];
  if (typeof tool['strict'] === 'boolean') fn.strict = tool['strict'];
  return { type: 'function', function: fn };
}

function addToolChoice(request: ChatRequest, choice: Prompt['tool_choice']): void {
  if (choice === undefined) return;
  if (choice.type === 'none') {
    request.tool_choice = 'none';
    return;
  }
  if (choice.type === 'auto') request.tool_choice = 'auto';
  else if (choice.type === 'any') request.tool_choice = 'required';
  else request.tool_choice = { type: 'function', function: { name: choice.name } };
  if (choice.disable_parallel_tool_use === true) request.parallel_tool_calls = false;
}

/** `output_config`: a JSON schema answer format, and the effort, where thinking did not set one. */
function addOutputConfig(request: ChatRequestWithExtras, config: Record<string, unknown> | undefined): void {
  if (!config) return;
  const format = config['format'] as { type?: string; schema?: Record<string, unknown> } | null | undefined;
  if (format?.type === 'json_schema' && format.schema) {
    request.response_format = { type: 'json_schema', json_schema: { name: 'output', schema: format.schema, strict: true } };
  }
  const effort = config['effort'];
  if (request.reasoning_effort === undefined && typeof effort === 'string') {
    request.reasoning_effort = effort === 'low' || effort === 'medium' ? effort : 'high';
  }
}

/** A block type the translation does not know, or one only Anthropic can answer (server tool results, uploads). */
function unsupportedBlock(block: Block, at: string): GatewayError {
  const type = String(block.type);
  if (/^(server_tool_use|.*_tool_result|container_upload)$/.test(type)) {
    return invalid(`${type} blocks come from Anthropic's server tools and this model is not served by Anthropic: remove them from the history`, `${at}.type`);
  }
  return invalid(`unknown content block type '${type}'`, `${at}.type`);
}

function invalid(message: string, param: string): GatewayError {
  return new GatewayError('invalid_request', message, { param });
}

import type OpenAI from 'openai';
import type { ChatChunk, ChatCompletion, ChunkDeltaWithReasoning, TranslationContext } from '../../types.ts';
import { ollamaBackendError } from '../errors.ts';
import { OllamaStreamDecoder } from '../ndjson.ts';
import { ollamaLoadMs, ollamaUsage, randomId } from '../backend-facts.ts';
import type { OllamaChatResponse } from '../wire.ts';

/*
 * An Ollama backend's `/api/chat` answer → OpenAI's chat form (the internal form), for a client of
 * another dialect: NDJSON lines become `chat.completion.chunk`s (role, content / reasoning / tool
 * calls, then the finish chunk and a usage chunk), a whole answer becomes a `chat.completion`.
 */

type FinishReason = 'stop' | 'length' | 'tool_calls';

function finishReason(doneReason: string | undefined, hadToolCalls: boolean): FinishReason {
  if (hadToolCalls) return 'tool_calls';
  return doneReason === 'length' ? 'length' : 'stop'; // stop, load, unload
}

/**
 * Turns the NDJSON lines of one `/api/chat` stream into OpenAI `chat.completion.chunk`s:
 * role first, then content / reasoning / tool calls, then the finish chunk and a usage chunk.
 */
export class OllamaChatStream {
  readonly id = randomId('chatcmpl-');
  readonly created = Math.floor(Date.now() / 1000);
  model: string;
  /** Set from the final line when Ollama had to load the model. */
  loadMs: number | undefined;
  done = false;
  #started = false;
  #toolCalls = 0;

  constructor(requestModel: string) {
    this.model = requestModel;
  }

  push(line: OllamaChatResponse): ChatChunk[] {
    if (line.error !== undefined) throw ollamaBackendError(line.error);
    if (line.model) this.model = line.model;
    const chunks: ChatChunk[] = [];
    const message = line.message;
    const delta: ChunkDeltaWithReasoning = {};
    let emit = false;
    if (!this.#started) {
      this.#started = true;
      delta.role = 'assistant';
      delta.content = '';
      emit = true;
    }
    if (message?.thinking) { delta.reasoning_content = message.thinking; emit = true; }
    if (message?.content) { delta.content = message.content; emit = true; }
    if (message?.tool_calls?.length) {
      delta.tool_calls = message.tool_calls.map((call) => ({
        index: this.#toolCalls++,
        id: call.id || randomId('call_'),
        type: 'function' as const,
        function: { name: call.function.name, arguments: JSON.stringify(call.function.arguments ?? {}) },
      }));
      emit = true;
    }
    if (emit) chunks.push(this.#chunk(delta, null));
    if (line.done) {
      this.done = true;
      this.loadMs = ollamaLoadMs(line);
      chunks.push(this.#chunk({}, finishReason(line.done_reason, this.#toolCalls > 0)));
      chunks.push({ id: this.id, object: 'chat.completion.chunk', created: this.created, model: this.model, choices: [], usage: ollamaUsage(line) });
    }
    return chunks;
  }

  #chunk(delta: ChunkDeltaWithReasoning, finish: FinishReason | null): ChatChunk {
    return { id: this.id, object: 'chat.completion.chunk', created: this.created, model: this.model, choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }] };
  }
}

/** Reads an Ollama backend's `/api/chat` NDJSON bytes as internal chat chunks. An error line ends it (`error`). */
export class OllamaChatDecoder extends OllamaStreamDecoder<OllamaChatResponse, ChatChunk> {
  constructor(context: Pick<TranslationContext, 'model'>) {
    super(new OllamaChatStream(context.model));
  }
}

/** A whole `/api/chat` answer (`stream: false`) → OpenAI `chat.completion`. */
export function fromOllamaChatResponse(response: OllamaChatResponse, requestModel: string): ChatCompletion {
  if (response.error !== undefined) throw ollamaBackendError(response.error);
  const message = response.message ?? {};
  const toolCalls = (message.tool_calls ?? []).map((call) => ({
    id: call.id || randomId('call_'),
    type: 'function' as const,
    function: { name: call.function.name, arguments: JSON.stringify(call.function.arguments ?? {}) },
  }));
  const out: OpenAI.Chat.Completions.ChatCompletionMessage & { reasoning_content?: string } = { role: 'assistant', content: message.content ?? '', refusal: null };
  if (toolCalls.length > 0) out.tool_calls = toolCalls;
  if (message.thinking) out.reasoning_content = message.thinking;
  return {
    id: randomId('chatcmpl-'),
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: response.model || requestModel,
    choices: [{ index: 0, message: out, finish_reason: finishReason(response.done_reason, toolCalls.length > 0), logprobs: null }],
    usage: ollamaUsage(response),
  };
}

/** `answerToInternal` of `ollama.chat`. */
export function chatAnswerToInternal(body: unknown, context: Pick<TranslationContext, 'model'>): ChatCompletion {
  return fromOllamaChatResponse(body as OllamaChatResponse, context.model);
}

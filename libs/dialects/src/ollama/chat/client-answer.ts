import { toGatewayError, type GatewayError } from '@homelab/bus';
import type { ChatChunk, ChatCompletion, ChatUsage, Completion, InternalAnswers, InternalForm, StreamEncoder } from '../../types.ts';
import {
  AnswerClock, ToolCallAssembler, chunkParts, countMetrics, createdAt, doneReason, ollamaToolCalls, orderedMetrics, totalDurationSince,
  type OllamaLogprob, type OllamaTranslationContext,
} from '../encoding.ts';
import { ollamaStreamErrorLine } from '../errors.ts';
import type { OllamaChatResponse, OllamaToolCall } from '../wire.ts';

/*
 * Internal chat answers → `/api/chat` answers for an Ollama client: NDJSON lines
 * `{model, created_at, message:{role, content, thinking?, tool_calls?}, done:false}` and a last line
 * with `done:true`, `done_reason` and the metrics; or, with `stream:false`, one JSON object. Keys
 * come in the order of Ollama's Go structs. `model` is the name the client asked for, as Ollama
 * echoes it.
 */

interface ChatMessageOut {
  role: 'assistant';
  content: string;
  thinking?: string;
  tool_calls?: OllamaToolCall[];
}

/** Streams internal chat chunks as `/api/chat` NDJSON lines. */
export class OllamaChatEncoder implements StreamEncoder<ChatChunk | Completion> {
  readonly #model: string;
  readonly #clock = new AnswerClock();
  readonly #toolCalls = new ToolCallAssembler();
  #finishReason: string | null = null;
  #usage: ChatUsage | undefined;
  #ended = false;

  constructor(context: Pick<OllamaTranslationContext, 'requestedModel'>) {
    this.#model = context.requestedModel;
  }

  push(chunk: ChatChunk | Completion): string {
    if (this.#ended) return '';
    const parts = chunkParts(chunk);
    if (parts.usage) this.#usage = parts.usage;
    let out = '';
    if (parts.thinking || parts.content) {
      this.#clock.markContent();
      const message: ChatMessageOut = { role: 'assistant', content: parts.content };
      if (parts.thinking) message.thinking = parts.thinking;
      out += this.#line(message, parts.logprobs);
    }
    if (parts.toolCalls.length > 0) {
      this.#clock.markContent();
      this.#toolCalls.add(parts.toolCalls);
    }
    if (parts.finishReason) {
      this.#finishReason = parts.finishReason;
      out += this.#flushToolCalls();
    }
    return out;
  }

  end(): string {
    if (this.#ended) return '';
    const calls = this.#flushToolCalls();
    if (this.#ended) return calls;
    this.#ended = true;
    const final: OllamaChatResponse = {
      model: this.#model,
      created_at: createdAt(),
      message: { role: 'assistant', content: '' },
      done: true,
      done_reason: doneReason(this.#finishReason),
      ...orderedMetrics({ ...this.#clock.durations(), ...countMetrics(this.#usage) }),
    };
    return JSON.stringify(final) + '\n';
  }

  fail(error: GatewayError): string {
    if (this.#ended) return '';
    this.#ended = true;
    return ollamaStreamErrorLine(error);
  }

  /** Ollama sends a model's tool calls whole, in one line of their own. */
  #flushToolCalls(): string {
    if (this.#toolCalls.size === 0) return '';
    try {
      return this.#line({ role: 'assistant', content: '', tool_calls: this.#toolCalls.take() }, undefined);
    } catch (err) {
      return this.fail(toGatewayError(err, 'backend_error'));
    }
  }

  #line(message: ChatMessageOut, logprobs: OllamaLogprob[] | undefined): string {
    const line = { model: this.#model, created_at: createdAt(), message, done: false, ...(logprobs && { logprobs }) };
    return JSON.stringify(line) + '\n';
  }
}

type AnswerMessage = ChatCompletion['choices'][number]['message'] & { reasoning_content?: string | null; reasoning?: string | null };

/** A whole internal chat answer as the `/api/chat` answer with `stream: false`. */
export function chatAnswerFromInternal(answer: InternalAnswers[InternalForm], context: OllamaTranslationContext): string {
  if (answer.object !== 'chat.completion') throw new TypeError(`ollama.chat answers chat completions, not ${answer.object}`);
  const choice = answer.choices[0];
  const source = (choice?.message ?? { content: '' }) as AnswerMessage;
  const message: ChatMessageOut = { role: 'assistant', content: (source.content ?? '') + (source.refusal ?? '') };
  const thinking = source.reasoning_content ?? source.reasoning;
  if (thinking) message.thinking = thinking;
  const toolCalls = ollamaToolCalls(source.tool_calls);
  if (toolCalls.length > 0) message.tool_calls = toolCalls;
  const logprobs = choice?.logprobs?.content?.length ? { logprobs: choice.logprobs.content.map(({ token, logprob }) => ({ token, logprob })) } : {};
  const whole = {
    model: context.requestedModel,
    created_at: createdAt(),
    message,
    done: true,
    done_reason: doneReason(choice?.finish_reason),
    ...logprobs,
    ...orderedMetrics({ ...totalDurationSince(context), ...countMetrics(answer.usage) }),
  };
  return JSON.stringify(whole);
}

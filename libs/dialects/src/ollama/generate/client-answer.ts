import type { GatewayError } from '@homelab/bus';
import type { ChatChunk, ChatCompletion, ChatUsage, Completion, InternalAnswers, InternalForm, StreamEncoder } from '../../types.ts';
import {
  AnswerClock, chunkParts, countMetrics, createdAt, doneReason, orderedMetrics, totalDurationSince,
  type OllamaLogprob, type OllamaTranslationContext,
} from '../encoding.ts';
import { ollamaStreamErrorLine } from '../errors.ts';
import type { OllamaGenerateResponse } from '../wire.ts';

/*
 * Internal answers (a chat for a plain prompt, a text completion for `suffix` / `raw`) →
 * `/api/generate` answers for an Ollama client: NDJSON lines `{model, created_at, response,
 * thinking?, done:false}`, then the final line with `done:true`, `done_reason` and the metrics; or
 * one JSON object with `stream:false`. There is no `context`: it needs Ollama's tokenizer (and raw
 * mode never returns one); Go's `omitempty` leaves it out the same way.
 */

/** Streams internal chunks (chat or text completion) as `/api/generate` NDJSON lines. */
export class OllamaGenerateEncoder implements StreamEncoder<ChatChunk | Completion> {
  readonly #model: string;
  readonly #clock = new AnswerClock();
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
    if (parts.finishReason) this.#finishReason = parts.finishReason;
    // `/api/generate` offers no tools, so tool call pieces (there should be none) have nowhere to go.
    if (!parts.content && !parts.thinking) return '';
    this.#clock.markContent();
    return this.#line(parts.content, parts.thinking, parts.logprobs);
  }

  end(): string {
    if (this.#ended) return '';
    this.#ended = true;
    const final: OllamaGenerateResponse = {
      model: this.#model,
      created_at: createdAt(),
      response: '',
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

  #line(response: string, thinking: string, logprobs: OllamaLogprob[] | undefined): string {
    const line = { model: this.#model, created_at: createdAt(), response, ...(thinking && { thinking }), done: false, ...(logprobs && { logprobs }) };
    return JSON.stringify(line) + '\n';
  }
}

type AnswerMessage = ChatCompletion['choices'][number]['message'] & { reasoning_content?: string | null; reasoning?: string | null };

/** The text, reasoning and finish reason of a whole chat or text completion answer. */
function answerText(answer: ChatCompletion | Completion): { response: string; thinking: string; finish: string | null | undefined } {
  if (answer.object === 'text_completion') {
    const choice = answer.choices[0];
    return { response: choice?.text ?? '', thinking: '', finish: choice?.finish_reason };
  }
  const choice = answer.choices[0];
  const message = choice?.message as AnswerMessage | undefined;
  return { response: message?.content ?? '', thinking: message?.reasoning_content ?? message?.reasoning ?? '', finish: choice?.finish_reason };
}

/** A whole internal answer as the `/api/generate` answer with `stream: false`. */
export function generateAnswerFromInternal(answer: InternalAnswers[InternalForm], context: OllamaTranslationContext): string {
  if (answer.object !== 'chat.completion' && answer.object !== 'text_completion') throw new TypeError(`ollama.generate answers chat or text completions, not ${answer.object}`);
  const { response, thinking, finish } = answerText(answer);
  const whole = {
    model: context.requestedModel,
    created_at: createdAt(),
    response,
    ...(thinking && { thinking }),
    done: true,
    done_reason: doneReason(finish),
    ...orderedMetrics({ ...totalDurationSince(context), ...countMetrics(answer.usage) }),
  };
  return JSON.stringify(whole);
}

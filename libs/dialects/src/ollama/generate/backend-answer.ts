import type { Completion, TranslationContext } from '../../types.ts';
import { ollamaLoadMs, ollamaUsage, randomId } from '../backend-facts.ts';
import { ollamaBackendError } from '../errors.ts';
import { OllamaStreamDecoder } from '../ndjson.ts';
import type { OllamaGenerateResponse } from '../wire.ts';

/*
 * An Ollama backend's `/api/generate` answer → OpenAI's text completion form (the internal form of
 * legacy completions): a chunk per line with text, then a finish chunk and a usage chunk
 * (`choices: []`), as OpenAI streams them with `include_usage`. Thinking has no place in a text
 * completion and is left out.
 */

type FinishReason = 'stop' | 'length';

function finishReason(doneReason: string | undefined): FinishReason {
  return doneReason === 'length' ? 'length' : 'stop';
}

/** Turns the NDJSON lines of one `/api/generate` stream into `text_completion` chunks. */
export class OllamaGenerateStream {
  readonly id = randomId('cmpl-');
  readonly created = Math.floor(Date.now() / 1000);
  model: string;
  loadMs: number | undefined;
  done = false;

  constructor(requestModel: string) {
    this.model = requestModel;
  }

  push(line: OllamaGenerateResponse): Completion[] {
    if (line.error !== undefined) throw ollamaBackendError(line.error);
    if (line.model) this.model = line.model;
    const chunks: Completion[] = [];
    if (line.response) chunks.push(this.#chunk(line.response, null));
    if (line.done) {
      this.done = true;
      this.loadMs = ollamaLoadMs(line);
      chunks.push(this.#chunk('', finishReason(line.done_reason)));
      chunks.push({ id: this.id, object: 'text_completion', created: this.created, model: this.model, choices: [], usage: ollamaUsage(line) });
    }
    return chunks;
  }

  #chunk(text: string, finish: FinishReason | null): Completion {
    // OpenAI's streamed chunks have a null finish_reason until the last; its type says it is always set.
    return { id: this.id, object: 'text_completion', created: this.created, model: this.model, choices: [{ index: 0, text, logprobs: null, finish_reason: finish as FinishReason }] };
  }
}

/** Reads an Ollama backend's `/api/generate` NDJSON bytes as text completion chunks. An error line ends it (`error`). */
export class OllamaGenerateDecoder extends OllamaStreamDecoder<OllamaGenerateResponse, Completion> {
  constructor(context: Pick<TranslationContext, 'model'>) {
    super(new OllamaGenerateStream(context.model));
  }
}

/** A whole `/api/generate` answer (`stream: false`) → OpenAI `text_completion`. */
export function fromOllamaGenerateResponse(response: OllamaGenerateResponse, requestModel: string): Completion {
  if (response.error !== undefined) throw ollamaBackendError(response.error);
  return {
    id: randomId('cmpl-'),
    object: 'text_completion',
    created: Math.floor(Date.now() / 1000),
    model: response.model || requestModel,
    choices: [{ index: 0, text: response.response ?? '', logprobs: null, finish_reason: finishReason(response.done_reason) }],
    usage: ollamaUsage(response),
  };
}

/** `answerToInternal` of `ollama.generate`. */
export function generateAnswerToInternal(body: unknown, context: Pick<TranslationContext, 'model'>): Completion {
  return fromOllamaGenerateResponse(body as OllamaGenerateResponse, context.model);
}

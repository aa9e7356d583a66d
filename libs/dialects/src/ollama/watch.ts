import { GatewayError } from '@homelab/bus';
import { topLevelSpans } from '../json-bytes.ts';
import { RecordWatch } from '../record-watch.ts';
import type { AnswerFacts } from '../types.ts';
import { ollamaLoadMs } from './backend-facts.ts';

/*
 * Watching an Ollama backend's answer on its way, unchanged, to an Ollama client. NDJSON lines are
 * cut at newlines; each is parsed until the first content, then only the final line (`"done":true`)
 * and error lines are: they are found by their top-level keys without parsing the rest.
 */

/** What the gateway reads of an Ollama answer; `loadMs` is Ollama's own `load_duration`, when it loaded the model. */
export type OllamaAnswerFacts = AnswerFacts;

/** One line or whole answer, as far as the watch reads it. */
interface OllamaLineLike {
  model?: unknown;
  message?: { content?: unknown; thinking?: unknown; tool_calls?: unknown };
  response?: unknown;
  thinking?: unknown;
  tool_calls?: unknown;
  done?: unknown;
  done_reason?: unknown;
  prompt_eval_count?: unknown;
  eval_count?: unknown;
  load_duration?: unknown;
  error?: unknown;
}

/** Whether a line commits the answer: text, thinking, a tool call, or the final line. */
export type OllamaLineHasContent = (line: OllamaLineLike) => boolean;

function nonEmptyList(value: unknown): boolean {
  return Array.isArray(value) && value.length > 0;
}

export const chatLineHasContent: OllamaLineHasContent = (line) => {
  const message = line.message;
  return line.done === true || !!(message && (message.content || message.thinking || nonEmptyList(message.tool_calls)));
};

export const generateLineHasContent: OllamaLineHasContent = (line) =>
  line.done === true || !!(line.response || line.thinking || nonEmptyList(line.tool_calls));

const decoder = new TextDecoder();
const FINAL_OR_ERROR = ['done', 'error'];

/** Reads the facts of a final line or a whole answer into `facts`. */
function readFinal(line: OllamaLineLike, facts: OllamaAnswerFacts): void {
  if (typeof line.model === 'string' && line.model) facts.responseModel ??= line.model;
  if (typeof line.done_reason === 'string' && line.done_reason) facts.finishReason = line.done_reason;
  if (typeof line.prompt_eval_count === 'number') facts.inputTokens = line.prompt_eval_count;
  if (typeof line.eval_count === 'number') facts.outputTokens = line.eval_count;
  const loadMs = typeof line.load_duration === 'number' ? ollamaLoadMs({ load_duration: line.load_duration }) : undefined;
  if (loadMs !== undefined) facts.loadMs = loadMs;
}

/** Watches `/api/chat` or `/api/generate` NDJSON passing through. */
export class OllamaStreamWatch extends RecordWatch<OllamaAnswerFacts> {
  readonly #hasContent: OllamaLineHasContent;
  facts: OllamaAnswerFacts = {};

  constructor(hasContent: OllamaLineHasContent) {
    super('ndjson');
    this.#hasContent = hasContent;
  }

  /** Ollama's load time as the final line reported it. */
  get loadMs(): number | undefined {
    return this.facts.loadMs;
  }

  protected read(record: Buffer): boolean {
    this.#readLine(record);
    return true;
  }

  #readLine(record: Buffer): void {
    if (this.hasContent && this.facts.responseModel !== undefined) {
      const spans = topLevelSpans(record, FINAL_OR_ERROR);
      const done = spans?.get('done');
      const isFinal = done !== undefined && record.toString('latin1', done.start, done.end) === 'true';
      if (spans && !isFinal && !spans.has('error')) return;
    }
    const text = decoder.decode(record).trim();
    if (text === '') return;
    let line: OllamaLineLike;
    try {
      line = JSON.parse(text) as OllamaLineLike;
    } catch {
      this.error ??= new GatewayError('backend_error', 'ollama sent a malformed stream line');
      return;
    }
    if (typeof line.error === 'string') {
      // Ollama's own text: the client, on Ollama's API too, gets the error line Ollama wrote.
      this.error ??= new GatewayError('backend_error', line.error);
      return;
    }
    if (typeof line.model === 'string' && line.model) this.facts.responseModel ??= line.model;
    if (!this.hasContent && this.#hasContent(line)) this.hasContent = true;
    if (line.done === true) {
      this.complete = true;
      readFinal(line, this.facts);
    }
  }
}

/** The facts of a whole Ollama answer (`stream: false`, or `/api/embed`), read from its top level without parsing the content. */
export function readOllamaAnswer(bytes: Uint8Array): OllamaAnswerFacts {
  const spans = topLevelSpans(bytes, ['model', 'done_reason', 'prompt_eval_count', 'eval_count', 'load_duration']);
  const facts: OllamaAnswerFacts = {};
  if (!spans) return facts;
  const line: Record<string, unknown> = {};
  for (const [key, span] of spans) line[key] = JSON.parse(decoder.decode(bytes.subarray(span.start, span.end)));
  readFinal(line, facts);
  return facts;
}

import { GatewayError } from '@homelab/bus';
import type { CompletionRequest, InternalRequest, PassThroughOptions } from '../../types.ts';
import { keepAliveDefault } from '../chat/backend-request.ts';
import { optionsFromSampling, type OllamaExtras } from '../options.ts';
import type { OllamaGenerateRequest, OllamaKeepAlive } from '../wire.ts';
import { unsupportedHere } from '../../refusals.ts';

/*
 * OpenAI's legacy completions (the internal text-completion form) → Ollama's `/api/generate`, for
 * an Ollama backend: how editors' fill-in-the-middle (`suffix`) and plain text continuation reach
 * Ollama. With a `suffix`, Ollama's template builds the model's fill-in-the-middle prompt; without,
 * the prompt is continued as written (`raw: true`), as OpenAI's completions do. Ollama's own
 * /v1/completions applies the chat template instead, which turns a text to continue into a
 * question to answer.
 */

function invalid(message: string, param: string): GatewayError {
  return new GatewayError('invalid_request', message, { param });
}

/** The one prompt Ollama takes: a string, or a list of one string. */
function singlePrompt(prompt: CompletionRequest['prompt']): string {
  if (typeof prompt === 'string') return prompt;
  if (prompt == null) return '';
  if (Array.isArray(prompt) && prompt.length === 1 && typeof prompt[0] === 'string') return prompt[0];
  if (Array.isArray(prompt) && prompt.every((item) => typeof item === 'string')) throw invalid('Ollama completes one prompt per request: send the prompts one by one', 'prompt');
  throw invalid('Ollama takes the prompt as text, not as token ids', 'prompt');
}

/** OpenAI completion request → Ollama `/api/generate` body. Throws GatewayError invalid_request for what Ollama cannot do. */
export function toOllamaGenerateRequest(request: CompletionRequest, settings: { stream: boolean; keepAlive?: OllamaKeepAlive }): OllamaGenerateRequest {
  if (request.n != null && request.n > 1) throw unsupportedHere('Ollama returns one choice per request: n must be 1', 'n');
  if (request.best_of != null && request.best_of > 1) throw invalid('Ollama returns one choice per request: best_of must be 1', 'best_of');
  if (request.echo) throw invalid('Ollama cannot echo the prompt (echo)', 'echo');
  if (request.logprobs != null) throw invalid('Ollama returns no log probabilities for completions (logprobs)', 'logprobs');
  const out: OllamaGenerateRequest = { model: request.model, prompt: singlePrompt(request.prompt), stream: settings.stream };
  if (request.suffix) out.suffix = request.suffix;
  else out.raw = true;
  const options = optionsFromSampling(request);
  if (options) out.options = options;
  const keepAlive = (request as CompletionRequest & OllamaExtras).keep_alive ?? settings.keepAlive;
  if (keepAlive !== undefined) out.keep_alive = keepAlive;
  return out;
}

/** `requestFromInternal` of `ollama.generate`: an internal text completion as the `/api/generate` body. */
export function generateRequestFromInternal(internal: InternalRequest, options: PassThroughOptions): Record<string, unknown> {
  if (internal.form !== 'completion') throw new TypeError(`ollama.generate carries text completions, not ${internal.form}`);
  const keepAlive = keepAliveDefault(options);
  const body = toOllamaGenerateRequest({ ...internal.request, model: options.model }, keepAlive === undefined ? { stream: options.stream } : { stream: options.stream, keepAlive });
  return body as unknown as Record<string, unknown>;
}

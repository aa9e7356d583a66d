import type OpenAI from 'openai';
import { GatewayError } from '@homelab/bus';
import type { ChatMessage, ChatRequest, CompletionRequest, InternalRequest } from '../../types.ts';
import { ollamaRawModeConflict } from '../errors.ts';
import { imageDataUrl } from '../images.ts';
import { applyOllamaAnswerOptions, samplingFromOptions } from '../options.ts';
import type { OllamaGenerateBody } from './schema.ts';
import { unsupportedHere } from '../../refusals.ts';

/*
 * An Ollama client's `/api/generate` → an internal request, for a backend that is not Ollama.
 * A plain prompt (with `system` and `images`) is a one-turn chat: every backend has chat, and the
 * backend applies the model's own template, as Ollama would. `suffix` (fill-in-the-middle) and
 * `raw` (the prompt is already templated) only make sense as a text completion: they become
 * OpenAI's legacy completions form (`prompt`, `suffix`). vLLM takes raw prompts but refuses
 * `suffix` (400 "suffix is not currently supported"), OpenAI takes it on its instruct model only,
 * Anthropic has no text completions: where the backend cannot, the worker answers the 400 of
 * `completionNotSupported` naming it.
 * `template` and `context` (deprecated) need Ollama's own templating and tokenizer: dropped.
 */

function invalid(message: string, param: string): GatewayError {
  return new GatewayError('invalid_request', message, { param });
}

/**
 * The 400 for `suffix` or `raw` on a backend without text completions (Anthropic), or `suffix` on
 * one without fill-in-the-middle (vLLM): the worker names the backend.
 */
export function completionNotSupported(backend: string, field: 'suffix' | 'raw'): GatewayError {
  const what = field === 'suffix' ? 'fill-in-the-middle text completions' : 'text completions';
  return unsupportedHere(`'${field}' needs ${what}, which ${backend} does not offer: ask for a model served by Ollama`, field);
}

/** Fill-in-the-middle or raw text: OpenAI's legacy completions form. */
function toCompletion(body: OllamaGenerateBody): InternalRequest {
  const why = body.suffix ? 'suffix' : 'raw';
  if (body.images?.length) throw invalid(`images cannot go with '${why}' outside Ollama: a text completion takes no images`, 'images');
  if (body.format != null && body.format !== '') throw invalid(`'format' cannot go with '${why}' outside Ollama: a text completion has no response format`, 'format');
  const sampling = samplingFromOptions(body.options ?? undefined);
  const request: CompletionRequest = {
    model: body.model,
    prompt: body.prompt ?? '',
    stream: body.stream !== false,
    ...sampling,
    // Ollama generates until a stop without `num_predict`; OpenAI's completions stop at 16 tokens
    // unless told otherwise, and vLLM reads null as "up to the context length".
    max_tokens: sampling.max_tokens ?? null,
  };
  if (body.suffix) request.suffix = body.suffix;
  return { form: 'completion', request };
}

function userMessage(body: OllamaGenerateBody): ChatMessage {
  const prompt = body.prompt ?? '';
  if (!body.images?.length) return { role: 'user', content: prompt };
  const parts: OpenAI.Chat.Completions.ChatCompletionContentPart[] = prompt === '' ? [] : [{ type: 'text', text: prompt }];
  body.images.forEach((image, i) => parts.push({ type: 'image_url', image_url: { url: imageDataUrl(image, `images[${i}]`) } }));
  return { role: 'user', content: parts };
}

/** `/api/generate` body → the internal chat request (a plain prompt) or text completion (`suffix`, `raw`). */
export function generateRequestToInternal(body: OllamaGenerateBody): InternalRequest {
  if (body.raw && (body.template || body.system || body.context?.length)) throw ollamaRawModeConflict();
  if (!body.prompt && !body.images?.length) {
    // Ollama loads (or unloads) the model for an empty prompt; the gateway answers that itself (ollamaGenerateShortcut).
    throw invalid('prompt is empty: there is nothing to generate', 'prompt');
  }
  if (body.suffix || body.raw) return toCompletion(body);
  const messages: ChatMessage[] = body.system ? [{ role: 'system', content: body.system }, userMessage(body)] : [userMessage(body)];
  const request: ChatRequest = { model: body.model, messages, stream: body.stream !== false, ...samplingFromOptions(body.options ?? undefined) };
  applyOllamaAnswerOptions(request, body);
  return { form: 'chat', request };
}

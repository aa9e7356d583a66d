import type OpenAI from 'openai';
import { GatewayError } from '@homelab/bus';
import type { ChatCall, ChatChunk, ChatCompletion, ChatRequest, ProviderName } from '../types.ts';
import { toBackendError } from './api.ts';

type StreamingRequest = OpenAI.Chat.Completions.ChatCompletionCreateParamsStreaming;
type NonStreamingRequest = OpenAI.Chat.Completions.ChatCompletionCreateParamsNonStreaming;

/** The client's request as one non-streaming call. Fields the SDK does not know pass through as they are. */
export function toNonStreamingRequest(request: ChatRequest): NonStreamingRequest {
  // Both OpenAI and vLLM reject stream_options without streaming (the router may serve a stream this way).
  const { stream_options: _streamOptions, ...rest } = request;
  return { ...rest, stream: false };
}

/** The client's request as a stream that always ends with a usage chunk (vLLM's default differs between versions). */
export function toStreamingRequest(request: ChatRequest): StreamingRequest {
  return { ...request, stream: true, stream_options: { ...request.stream_options, include_usage: true } };
}

export async function chatCompletion(client: OpenAI, provider: ProviderName, call: ChatCall): Promise<ChatCompletion> {
  try {
    return await client.chat.completions.create(toNonStreamingRequest(call.request), { signal: call.signal });
  } catch (err) {
    throw toBackendError(err, provider, { signal: call.signal });
  }
}

/** Yields the backend's chunks as they arrive, untouched (so vLLM's `reasoning_content` stays). */
export async function* chatCompletionStream(client: OpenAI, provider: ProviderName, call: ChatCall): AsyncGenerator<ChatChunk> {
  const { signal } = call;
  let contentSent = false;
  let finished = false;
  try {
    const stream = await client.chat.completions.create(toStreamingRequest(call.request), { signal });
    for await (const chunk of stream) {
      if (!finished) for (const choice of chunk.choices) if (choice.finish_reason) finished = true;
      contentSent = true;
      yield chunk;
    }
  } catch (err) {
    throw toBackendError(err, provider, { signal, contentSent });
  }
  // The SDK ends the iteration quietly on abort, and on a body that closes cleanly without `[DONE]`.
  if (signal.aborted) throw new GatewayError('cancelled', `${provider} request cancelled`, { contentSent });
  if (!finished) throw new GatewayError('backend_error', `${provider} ended the stream before the answer was complete`, { contentSent });
}

import { GatewayError, toGatewayError } from '@homelab/bus';
import { countTokensAnswer, estimateInputTokens, type ChatRequest, type CountTokensRequestPayload } from '@homelab/dialects';
import { readAll } from '../http/origin.ts';
import type { Backend } from '../types.ts';
import { AnswerChannel, type Publish } from './answer-channel.ts';
import type { WorkerEnvelope } from './envelope.ts';

export interface CountTokensDeps {
  backend: Backend;
  publish: Publish;
  signal: AbortSignal;
  outcome(word: 'done'): void;
  reportFailure(error: GatewayError): void;
  touch(): void;
}

const decoder = new TextDecoder();

/**
 * Anthropic's `count_tokens` at a worker: passed through to Anthropic for its models; counted by the
 * backend's own tokenizer where it has one (vLLM's `/tokenize`, over the prompt in chat form);
 * otherwise estimated (`estimateInputTokens`, documented in docs/dialects.md). Claude Code asks
 * before each turn, to know when to compact the conversation.
 */
export async function countTokens(envelope: WorkerEnvelope, body: Uint8Array, deps: CountTokensDeps): Promise<void> {
  const { backend, signal } = deps;
  const channel = new AnswerChannel(deps.publish, envelope, backend.provider, deps.touch);
  try {
    let answer: Uint8Array | string;
    if (backend.dialects.has(envelope.dialect.name)) {
      const bytes = envelope.dialect.passThrough!(body, { model: envelope.model, stream: false });
      answer = await readAll((await backend.send({
        dialect: envelope.dialect.name, body: bytes, stream: false, signal, headers: envelope.forwardedHeaders, headersTimeoutMs: 30_000, bodyTimeoutMs: 30_000,
      })).body);
    } else {
      const request = JSON.parse(decoder.decode(body)) as CountTokensRequestPayload;
      const internal = envelope.dialect.requestToInternal!(request);
      answer = countTokensAnswer(await countPrompt(backend, envelope.model, internal.form === 'chat' ? internal.request : undefined, request, signal));
    }
    channel.single(answer, 0);
    deps.outcome('done');
  } catch (err) {
    deps.reportFailure(toGatewayError(signal.aborted ? signal.reason : err, 'backend_error'));
  }
}

/**
 * The prompt's tokens by the backend's tokenizer, tool definitions included (Claude Code's tools are
 * thousands of tokens), else the documented estimate. A tokenizer that refuses the prompt (a text
 * model given an image) gets the estimate too: a count is advice for when to compact, and the
 * Messages request itself will say what the model cannot take.
 */
async function countPrompt(backend: Backend, model: string, chat: ChatRequest | undefined, request: CountTokensRequestPayload, signal: AbortSignal): Promise<number> {
  if (!backend.countTokens || !chat) return estimateInputTokens(request);
  try {
    return await backend.countTokens({ model, messages: chat.messages as unknown[], ...(chat.tools?.length && { tools: chat.tools as unknown[] }) }, signal);
  } catch (err) {
    if (err instanceof GatewayError && err.code === 'invalid_request') return estimateInputTokens(request);
    throw err;
  }
}

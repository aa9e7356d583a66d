// The worker runtime and the transport every backend shares. The backends themselves are separate
// entries (`@homelab/backends/vllm`, `/ollama`, `/openai`, `/anthropic`), so a worker loads only its
// own: the vLLM worker never loads an SDK.
export type * from './types.ts';
export * from './http/origin.ts';
export * from './http/status.ts';
export * from './worker/serve.ts';
export * from './worker/request.ts';
export * from './worker/responses.ts';
export * from './worker/envelope.ts';
export * from './worker/answer-channel.ts';
export * from './worker/completion-event.ts';
export * from './images/jobs.ts';

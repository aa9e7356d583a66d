export type * from './types.ts';
export * from './openai-compatible/index.ts';
export * from './vllm/index.ts';
export * from './openai/index.ts';
export * from './ollama/index.ts';
export * from './anthropic/index.ts';
export * from './worker.ts';
export * from './images/jobs.ts';
export * from './openai/images.ts';

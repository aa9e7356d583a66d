export * from './types.ts';
export * from './framing.ts';
export * from './json-bytes.ts';
export * from './registry.ts';
export * from './openai-chat/index.ts';
export * from './openai-embeddings/index.ts';
export * from './anthropic-messages/index.ts';
export * from './ollama/chat-backend.ts';

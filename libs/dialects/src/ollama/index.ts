import type { DialectName, InternalForm } from '../types.ts';

export * from './wire.ts';
export * from './errors.ts';
export * from './models.ts';
export * from './shortcuts.ts';
export { ollamaLoadMs, ollamaUsage } from './backend-facts.ts';
export { OllamaStreamWatch, readOllamaAnswer, type OllamaAnswerFacts } from './watch.ts';
export { ollamaPassThrough } from './pass-through.ts';
export type { OllamaTranslationContext } from './encoding.ts';
export type { OllamaExtras } from './options.ts';
export * from './chat/index.ts';
export * from './generate/index.ts';
export * from './embed/index.ts';
export * from './embeddings/index.ts';

/**
 * Which Ollama dialect carries each internal form to an Ollama backend: chat to `/api/chat`, text
 * completions (legacy completions, fill-in-the-middle) to `/api/generate`, embeddings to `/api/embed`.
 */
export const OLLAMA_DIALECT_FOR_FORM: Readonly<Record<InternalForm, DialectName>> = {
  chat: 'ollama.chat',
  completion: 'ollama.generate',
  embeddings: 'ollama.embed',
};

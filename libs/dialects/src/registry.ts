import { GatewayError } from '@homelab/bus';
import { anthropicCountTokens, anthropicMessages } from './anthropic-messages/index.ts';
import { openAIChat } from './openai-chat/index.ts';
import { openAICompletions } from './openai-completions/index.ts';
import { openAIEmbeddings } from './openai-embeddings/index.ts';
import { ollamaChat, ollamaEmbed, ollamaEmbeddings, ollamaGenerate } from './ollama/index.ts';
import { openAIResponses } from './openai-responses/index.ts';
import type { Dialect, DialectName } from './types.ts';

/** Every dialect the gateway implements, by its name on the bus. */
const DIALECTS: Partial<Record<DialectName, Dialect>> = {
  'openai.chat': openAIChat as Dialect,
  'openai.completions': openAICompletions as Dialect,
  'openai.embeddings': openAIEmbeddings as Dialect,
  'anthropic.messages': anthropicMessages as Dialect,
  'anthropic.count_tokens': anthropicCountTokens as Dialect,
  'ollama.chat': ollamaChat as Dialect, 'ollama.generate': ollamaGenerate as Dialect, 'ollama.embed': ollamaEmbed as Dialect, 'ollama.embeddings': ollamaEmbeddings as Dialect,
  'openai.responses': openAIResponses as Dialect,
};

/** The dialect of that name; a GatewayError when the gateway does not speak it. */
export function dialectOf(name: string | undefined): Dialect {
  const dialect = name ? DIALECTS[name as DialectName] : undefined;
  if (!dialect) throw new GatewayError('invalid_request', `unknown dialect '${name ?? ''}'`);
  return dialect;
}

/** GenAI's operation name for a dialect's requests: `chat`, `text_completion` or `embeddings` (events, metrics, spans). */
export function operationName(dialect: Dialect): 'chat' | 'text_completion' | 'embeddings' {
  if (dialect.operation === 'embed') return 'embeddings';
  return dialect.name === 'openai.completions' || dialect.name === 'ollama.generate' ? 'text_completion' : 'chat';
}

export function implementedDialects(): DialectName[] {
  return Object.keys(DIALECTS) as DialectName[];
}

import { GatewayError } from '@homelab/bus';
import { openAIChat } from './openai-chat/index.ts';
import { openAICompletions } from './openai-completions/index.ts';
import { openAIEmbeddings } from './openai-embeddings/index.ts';
import { openAIResponses } from './openai-responses/index.ts';
import type { Dialect, DialectName } from './types.ts';

/** Every dialect the gateway implements, by its name on the bus. */
const DIALECTS: Partial<Record<DialectName, Dialect>> = {
  'openai.chat': openAIChat as Dialect,
  'openai.completions': openAICompletions as Dialect,
  'openai.embeddings': openAIEmbeddings as Dialect,
  'openai.responses': openAIResponses as Dialect,
};

/** The dialect of that name; a GatewayError when the gateway does not speak it. */
export function dialectOf(name: string | undefined): Dialect {
  const dialect = name ? DIALECTS[name as DialectName] : undefined;
  if (!dialect) throw new GatewayError('invalid_request', `unknown dialect '${name ?? ''}'`);
  return dialect;
}

export function implementedDialects(): DialectName[] {
  return Object.keys(DIALECTS) as DialectName[];
}

import { Type, type Static } from '@sinclair/typebox';
import { KeepAlive, ModelName, Nullable, Open, Options } from '../schema-parts.ts';

/** The older `POST /api/embeddings`: one `prompt`, one vector; an empty prompt loads the model and answers `{"embedding":[]}`. */
export const OllamaEmbeddingsRequestSchema = Type.Object({
  model: ModelName,
  prompt: Nullable(Type.String()),
  options: Options,
  keep_alive: KeepAlive,
}, Open);
export type OllamaEmbeddingsBody = Static<typeof OllamaEmbeddingsRequestSchema>;

import { Type, type Static } from '@sinclair/typebox';
import { Images, ModelName, Nullable, Open, RunFields } from '../schema-parts.ts';

/**
 * `POST /api/generate`. `stream` defaults to TRUE. An empty prompt loads the model (unloads it with
 * `keep_alive: 0`); `suffix` asks for fill-in-the-middle; `raw` skips the model's template.
 */
export const OllamaGenerateRequestSchema = Type.Object({
  model: ModelName,
  prompt: Nullable(Type.String()),
  suffix: Nullable(Type.String()),
  system: Nullable(Type.String()),
  template: Nullable(Type.String()),
  context: Nullable(Type.Array(Type.Integer())),
  raw: Nullable(Type.Boolean()),
  images: Images,
  ...RunFields,
}, Open);
export type OllamaGenerateBody = Static<typeof OllamaGenerateRequestSchema>;

import { Type, type Static } from '@sinclair/typebox';
import { Format, Images, KeepAlive, ModelName, Nullable, Open, Options, Think } from '../schema-parts.ts';

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
  stream: Nullable(Type.Boolean()),
  raw: Nullable(Type.Boolean()),
  format: Format,
  images: Images,
  options: Options,
  keep_alive: KeepAlive,
  think: Think,
  truncate: Nullable(Type.Boolean()),
  shift: Nullable(Type.Boolean()),
  logprobs: Nullable(Type.Boolean()),
  top_logprobs: Nullable(Type.Integer({ minimum: 0, maximum: 20 })),
}, Open);
export type OllamaGenerateBody = Static<typeof OllamaGenerateRequestSchema>;

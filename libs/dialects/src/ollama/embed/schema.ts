import { Type, type Static } from '@sinclair/typebox';
import { KeepAlive, ModelName, Nullable, Open, Options } from '../schema-parts.ts';

/**
 * `POST /api/embed`: `input` is a string or a list of strings (anything else: 400 `invalid input
 * type`); no input loads the model and answers no vectors. `truncate` defaults to true.
 */
export const OllamaEmbedRequestSchema = Type.Object({
  model: ModelName,
  input: Nullable(Type.Union([Type.String(), Type.Array(Type.String())])),
  truncate: Nullable(Type.Boolean()),
  dimensions: Nullable(Type.Integer()),
  options: Options,
  keep_alive: KeepAlive,
}, Open);
export type OllamaEmbedBody = Static<typeof OllamaEmbedRequestSchema>;

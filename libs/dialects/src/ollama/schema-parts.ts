import { Type, type TSchema } from '@sinclair/typebox';

/*
 * Schema parts `/api/chat`, `/api/generate`, `/api/embed` and `/api/embeddings` share. Types follow
 * api/types.go: what Go's JSON decoder rejects is rejected here (a string where a bool goes, a number
 * where a string goes); unknown fields pass, since Ollama ignores them and newer servers may use them.
 */

export const Open = { additionalProperties: true } as const;

export const Nullable = <T extends TSchema>(schema: T) => Type.Optional(Type.Union([schema, Type.Null()]));

/** Ollama answers `model is required` for an empty name; the router's schema says the same. */
export const ModelName = Type.String({ minLength: 1, maxLength: 256 });

/** `keep_alive`: a Go duration string (`"5m"`, `"-1s"`) or seconds (negative = forever). */
export const KeepAlive = Nullable(Type.Union([Type.String(), Type.Number()]));

/** `think`: a boolean or a level. */
export const Think = Nullable(Type.Union([Type.Boolean(), Type.Literal('low'), Type.Literal('medium'), Type.Literal('high'), Type.Literal('max')]));

/** `format`: `"json"`, a JSON schema object, or `""`. Other strings fail when Ollama runs the request. */
export const Format = Nullable(Type.Union([Type.String(), Type.Object({}, Open)]));

/** `options`: a map; Ollama checks each option's type when it runs the request. */
export const Options = Nullable(Type.Object({}, Open));

/** Base64 image data (Go's []byte). */
export const Images = Nullable(Type.Array(Type.String()));

/** What `/api/chat` and `/api/generate` share about running the model (Ollama's api/types.go has them on both requests). */
export const RunFields = {
  stream: Nullable(Type.Boolean()),
  format: Format,
  options: Options,
  keep_alive: KeepAlive,
  think: Think,
  truncate: Nullable(Type.Boolean()),
  shift: Nullable(Type.Boolean()),
  logprobs: Nullable(Type.Boolean()),
  top_logprobs: Nullable(Type.Integer({ minimum: 0, maximum: 20 })),
};

import { Type, type Static, type TSchema } from '@sinclair/typebox';

/*
 * OpenAI's legacy completion request (`POST /v1/completions`), as openai-node's
 * `CompletionCreateParamsBase` has it: a prompt as a string, strings, or token ids, with `suffix`
 * for fill-in-the-middle. Unknown fields pass (vLLM takes many more: top_k, min_p, guided decoding…).
 */

const Open = { additionalProperties: true } as const;
const Nullable = <T extends TSchema>(t: T) => Type.Optional(Type.Union([t, Type.Null()]));
const TokenIds = Type.Array(Type.Integer({ minimum: 0 }), { minItems: 1 });

export const CompletionRequestSchema = Type.Object({
  model: Type.String({ minLength: 1, maxLength: 256 }),
  prompt: Type.Union([Type.String(), Type.Array(Type.String(), { minItems: 1 }), TokenIds, Type.Array(TokenIds, { minItems: 1 })]),
  suffix: Nullable(Type.String()),
  max_tokens: Nullable(Type.Integer({ minimum: 0 })),
  temperature: Nullable(Type.Number({ minimum: 0, maximum: 2 })),
  top_p: Nullable(Type.Number({ minimum: 0, maximum: 1 })),
  /** Several choices per prompt: passed to the backends that have them (vLLM, OpenAI). */
  n: Nullable(Type.Integer({ minimum: 1, maximum: 128 })),
  best_of: Nullable(Type.Integer({ minimum: 0, maximum: 20 })),
  stream: Nullable(Type.Boolean()),
  stream_options: Nullable(Type.Object({ include_usage: Type.Optional(Type.Boolean()) }, Open)),
  /** The log probabilities of this many most likely tokens (OpenAI allows 5, vLLM its `--max-logprobs`). */
  logprobs: Nullable(Type.Integer({ minimum: 0 })),
  echo: Nullable(Type.Boolean()),
  stop: Nullable(Type.Union([Type.String(), Type.Array(Type.String(), { maxItems: 4 })])),
  presence_penalty: Nullable(Type.Number({ minimum: -2, maximum: 2 })),
  frequency_penalty: Nullable(Type.Number({ minimum: -2, maximum: 2 })),
  logit_bias: Nullable(Type.Record(Type.String(), Type.Number())),
  seed: Nullable(Type.Integer()),
  user: Type.Optional(Type.String()),
}, Open);
export type CompletionRequestPayload = Static<typeof CompletionRequestSchema>;

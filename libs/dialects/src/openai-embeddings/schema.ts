import { Type, type Static } from '@sinclair/typebox';

const Open = { additionalProperties: true } as const;

/** OpenAI's embeddings request. */
export const EmbeddingsRequestSchema = Type.Object({
  model: Type.String({ minLength: 1, maxLength: 256 }),
  input: Type.Union([
    Type.String(),
    Type.Array(Type.String(), { minItems: 1, maxItems: 2048 }),
    Type.Array(Type.Integer(), { minItems: 1 }),
    Type.Array(Type.Array(Type.Integer(), { minItems: 1 }), { minItems: 1, maxItems: 2048 }),
  ]),
  encoding_format: Type.Optional(Type.Union([Type.Literal('float'), Type.Literal('base64')])),
  dimensions: Type.Optional(Type.Integer({ minimum: 1 })),
  user: Type.Optional(Type.String()),
}, Open);
export type EmbeddingsRequestPayload = Static<typeof EmbeddingsRequestSchema>;


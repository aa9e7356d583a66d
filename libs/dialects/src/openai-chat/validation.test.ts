import { Type } from '@sinclair/typebox';
import { describe, expect, it } from 'vitest';
import { GatewayError } from '@homelab/bus';
import { explainMismatch, ModelsRequestSchema, validator } from '@homelab/bus';
import { EmbeddingsRequestSchema } from '../openai-embeddings/schema.ts';
import { ChatRequestSchema } from './schema.ts';

const chat = validator(ChatRequestSchema);
const user = { role: 'user', content: 'hi' };

/** The GatewayError a payload is refused with: its message and its param. */
function refusal(parse: (v: unknown) => unknown, value: unknown): { message: string; param: string | null } {
  try {
    parse(value);
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    const e = err as GatewayError;
    expect(e.code).toBe('invalid_request');
    return { message: e.message, param: e.param ?? null };
  }
  throw new Error('accepted');
}

describe('validation messages name the field, what was expected and what came', () => {
  it.each([
    ['an unknown role', { model: 'fast', messages: [user, { role: 'wizard', content: 'x' }] },
      'messages[1].role', "messages[1].role: expected one of 'system', 'developer', 'user', 'assistant', 'tool', got 'wizard'"],
    ['a temperature that is a word', { model: 'fast', messages: [user], temperature: 'hot' },
      'temperature', 'temperature: expected a number, got string "hot"'],
    ['a temperature out of range', { model: 'fast', messages: [user], temperature: 7 },
      'temperature', 'temperature: expected a number from 0 to 2, got 7'],
    ['no messages', { model: 'fast' }, 'messages', 'messages: required, expected an array, got nothing'],
    ['an empty messages list', { model: 'fast', messages: [] }, 'messages', 'messages: expected at least 1 item, got 0'],
    ['messages as a string', { model: 'fast', messages: 'hi' }, 'messages', 'messages: expected an array, got string "hi"'],
    ['a model that is a number', { model: 5, messages: [user] }, 'model', 'model: expected a string, got number 5'],
    ['a tool message without its call id', { model: 'fast', messages: [user, { role: 'tool', content: 'x' }] },
      'messages[1].tool_call_id', 'messages[1].tool_call_id: required, expected a string, got nothing'],
    ['a content part of an unknown type', { model: 'fast', messages: [{ role: 'user', content: [{ type: 'video', video: {} }] }] },
      'messages[0].content[0].type', "messages[0].content[0].type: expected one of 'text', 'image_url', 'input_audio', 'file', got 'video'"],
    ['a text part without text', { model: 'fast', messages: [{ role: 'user', content: [{ type: 'text' }] }] },
      'messages[0].content[0].text', 'messages[0].content[0].text: required, expected a string, got nothing'],
    ['content that is a number', { model: 'fast', messages: [{ role: 'user', content: 42 }] },
      'messages[0].content', 'messages[0].content: expected a string or an array, got number 42'],
    ['a message without a role', { model: 'fast', messages: [{ content: 'x' }] },
      'messages[0].role', "messages[0].role: expected one of 'system', 'developer', 'user', 'assistant', 'tool', got nothing"],
    ['a message that is not an object', { model: 'fast', messages: ['hi'] },
      'messages[0]', 'messages[0]: expected an object, got string "hi"'],
    ['stream as a string', { model: 'fast', messages: [user], stream: 'yes' }, 'stream', 'stream: expected a boolean, got string "yes"'],
    ['an unknown tool_choice', { model: 'fast', messages: [user], tool_choice: 'sometimes' },
      'tool_choice', "tool_choice: expected one of 'none', 'auto', 'required' (or an object), got 'sometimes'"],
    ['n above what OpenAI takes', { model: 'fast', messages: [user], n: 129 }, 'n', 'n: expected an integer from 1 to 128, got 129'],
    ['max_tokens with a fraction', { model: 'fast', messages: [user], max_tokens: 1.5 }, 'max_tokens', 'max_tokens: expected an integer, got number 1.5'],
    ['an assistant tool call of another type', { model: 'fast', messages: [user, { role: 'assistant', tool_calls: [{ id: 'c1', type: 'web', function: { name: 'f', arguments: '{}' } }] }] },
      'messages[1].tool_calls[0].type', "messages[1].tool_calls[0].type: expected 'function', got 'web'"],
    ['a body that is an array', [user], '', 'body: expected an object, got an array of 1'],
  ])('%s', (_what, body, param, message) => {
    const got = refusal((v) => chat.parse(v), body);
    expect(got.message).toBe(message);
    expect(got.param).toBe(param || null);
  });

  it('other schemas: embeddings input, a models lookup, a closed object', () => {
    expect(refusal((v) => validator(EmbeddingsRequestSchema).parse(v), { model: 'e', input: 7 }).message)
      .toBe('input: expected a string or an array, got number 7');
    expect(refusal((v) => validator(ModelsRequestSchema).parse(v), { id: 7 })).toEqual({ message: 'id: expected a string, got number 7', param: 'id' });
    expect(refusal((v) => validator(ModelsRequestSchema).parse(v), { id: '' }).message).toBe('id: expected a non-empty string, got ""');
    expect(refusal((v) => validator(ModelsRequestSchema).parse(v), { name: 'x' }).message).toBe("name: unknown field (expected one of 'id')");
  });

  it('a valid value has nothing to explain; a long string is cut in the message', () => {
    expect(explainMismatch(ChatRequestSchema, { model: 'fast', messages: [user] })).toBeUndefined();
    const long = 'x'.repeat(500);
    expect(explainMismatch(Type.Object({ n: Type.Number() }), { n: long })!.message).toBe(`n: expected a number, got string "${'x'.repeat(40)}…"`);
  });
});

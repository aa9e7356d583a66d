import { Type } from '@sinclair/typebox';
import { describe, expect, it } from 'vitest';
import { validator } from './schemas.ts';

const Open = { additionalProperties: true } as const;
const Text = Type.Object({ type: Type.Literal('text'), text: Type.String() }, Open);
const Image = Type.Object({ type: Type.Literal('image'), source: Type.Object({ data: Type.String() }, Open) }, Open);
const Body = Type.Object({
  role: Type.Optional(Type.Union([Type.Literal('user'), Type.Literal('assistant')])),
  content: Type.Optional(Type.Union([Type.String(), Type.Array(Type.Union([Text, Image]))])),
  turn: Type.Optional(Type.Union([
    Type.Object({ role: Type.Literal('user'), text: Type.String() }, Open),
    Type.Object({ role: Type.Literal('system'), text: Type.String() }, Open),
  ])),
  n: Type.Optional(Type.Union([Type.Integer(), Type.Null()])),
}, Open);
const check = validator(Body);

function messageOf(value: unknown): string {
  try {
    check.parse(value);
    return 'valid';
  } catch (err) {
    return (err as Error).message;
  }
}

describe('validator errors in unions', () => {
  it('name the field inside the variant the value meant, found by its type', () => {
    expect(messageOf({ content: [{ type: 'text', text: 'a' }, { type: 'image', source: { data: 5 } }] }))
      .toBe('content[1].source.data: expected a string, got number 5');
    expect(messageOf({ content: [{ type: 'text', text: null }] })).toBe('content[0].text: expected a string, got null');
  });

  it('list the allowed values of a literal union or of a discriminating field', () => {
    expect(messageOf({ role: 'bot' })).toBe("role: expected one of 'user', 'assistant', got 'bot'");
    expect(messageOf({ turn: { role: 'bot', text: 'x' } })).toBe("turn.role: expected one of 'user', 'system', got 'bot'");
    expect(messageOf({ content: [{ type: 'video' }] })).toBe("content[0].type: expected one of 'text', 'image', got 'video'");
  });

  it('name the kinds a union takes where no variant is meant', () => {
    expect(messageOf({ content: 5 })).toBe('content: expected a string or an array, got number 5');
    expect(messageOf({ n: 'two' })).toBe('n: expected an integer, got string "two"');
    expect(messageOf({ content: [{ type: 'text', text: 'ok' }] })).toBe('valid');
  });
});

import { Type } from '@sinclair/typebox';
import { describe, expect, it } from 'vitest';
import { GatewayError } from './errors.ts';
import { validator } from './schemas.ts';

const Open = { additionalProperties: true } as const;
const Text = Type.Object({ type: Type.Literal('text'), text: Type.String() }, Open);
const Image = Type.Object({ type: Type.Literal('image_url'), image_url: Type.Object({ url: Type.String() }, Open) }, Open);
const Content = Type.Union([Type.String(), Type.Array(Type.Union([Text, Image]))]);
const Message = Type.Union([
  Type.Object({ role: Type.Union([Type.Literal('system'), Type.Literal('developer')]), content: Content }, Open),
  Type.Object({ role: Type.Literal('user'), content: Content }, Open),
  Type.Object({ role: Type.Literal('tool'), content: Content, tool_call_id: Type.String() }, Open),
]);
/** Items as the Responses API has them: `type` optional on messages and references, required elsewhere. */
const Item = Type.Union([
  Type.Object({ type: Type.Optional(Type.Literal('message')), role: Type.Union([Type.Literal('user'), Type.Literal('assistant')]), content: Content }, Open),
  Type.Object({ type: Type.Literal('function_call'), call_id: Type.String(), name: Type.String(), arguments: Type.String() }, Open),
  Type.Object({ type: Type.Optional(Type.Literal('item_reference')), id: Type.String() }, Open),
  Type.Object({ type: Type.Union([Type.Literal('web_search_call'), Type.Literal('mcp_call')]) }, Open),
]);
const Body = Type.Object({
  messages: Type.Optional(Type.Array(Message)),
  input: Type.Optional(Type.Union([Type.String(), Type.Array(Item)])),
  n: Type.Optional(Type.Union([Type.Integer({ minimum: 1 }), Type.Null()])),
}, Open);
const check = validator(Body);

function rejection(body: unknown): { message: string; param: string | null } {
  try {
    check.parse(body);
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    return { message: (err as GatewayError).message, param: (err as GatewayError).param };
  }
  throw new Error('the body was accepted');
}

describe('validator: errors under unions name the field and what was expected', () => {
  it('an unknown discriminator names the path and the known values', () => {
    expect(rejection({ input: [{ role: 'user', content: 'hi' }, { type: 'telepathy' }] })).toEqual({
      param: 'input[1].type',
      message: `'input[1].type': Unknown type "telepathy"; expected one of "message", "function_call", "item_reference", "web_search_call", "mcp_call"`,
    });
    expect(rejection({ messages: [{ role: 'robot', content: 'x' }] }).param).toBe('messages[0].role');
  });

  it('follows the member the value names to its own missing or wrong field', () => {
    expect(rejection({ input: [{ type: 'function_call', call_id: 'c1', name: 'f' }] })).toEqual({
      param: 'input[0].arguments', message: `'input[0].arguments': Expected required property (got missing)`,
    });
    expect(rejection({ messages: [{ role: 'tool', content: 'x' }] }).param).toBe('messages[0].tool_call_id');
    expect(rejection({ input: [{ role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'image_url', image_url: { url: 5 } }] }] }))
      .toMatchObject({ param: 'input[0].content[1].image_url.url', message: expect.stringContaining('Expected string') });
  });

  it('without a tag, picks the member that knows the fields the value has', () => {
    // No `type`: a message by its role and content, not an item reference.
    expect(rejection({ input: [{ role: 'user', content: 7 }] })).toEqual({ param: 'input[0].content', message: `'input[0].content': Expected string or array (got number)` });
    expect(rejection({ input: [{ id: 5 }] }).param).toBe('input[0].id');
  });

  it('names the kinds a scalar union takes, and a literal union its values', () => {
    expect(rejection({ n: 'two' })).toEqual({ param: 'n', message: `'n': Expected integer or null (got string)` });
    expect(rejection({ input: 12 })).toEqual({ param: 'input', message: `'input': Expected string or array (got number)` });
    expect(rejection({ input: [{ role: 'judge', content: 'x' }] })).toEqual({ param: 'input[0].role', message: `'input[0].role': Expected one of "user", "assistant" (got string)` });
  });

  it('errors outside unions are unchanged', () => {
    expect(rejection({ n: 0 })).toMatchObject({ param: 'n' });
    expect(check.parse({ input: [{ role: 'user', content: 'hi' }, { type: 'mcp_call' }], n: null })).toBeTruthy();
  });
});

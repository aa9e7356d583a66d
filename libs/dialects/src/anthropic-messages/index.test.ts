import { GatewayError } from '@homelab/bus';
import { describe, expect, it } from 'vitest';
import { dialectOf, implementedDialects } from '../registry.ts';
import type { ChatChunk, ChatCompletion, ChatRequest, TranslationContext } from '../types.ts';
import { anthropicCountTokens, anthropicMessages } from './index.ts';
import type { MessagesRequestPayload } from './schema.ts';

const CONTEXT: TranslationContext = { requestId: 'r1', model: 'claude-haiku-4-5', requestedModel: 'fast', created: 1_700_000_000, includeUsage: false };

/** A Claude Code-like request, written with its own spacing: pass-through must keep every byte but the model. */
const RAW = `{
  "model": "fast",
  "max_tokens": 32000,
  "thinking": {"type": "enabled", "budget_tokens": 10000},
  "system": [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
  "messages": [{"role": "user", "content": [{"type": "text", "text": "hi \\u00e9", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]}],
  "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]},
  "stream": true
}`;

describe('the anthropic dialects', () => {
  it('are registered under their bus names', () => {
    expect(dialectOf('anthropic.messages')).toBe(anthropicMessages);
    expect(dialectOf('anthropic.count_tokens')).toBe(anthropicCountTokens);
    expect(implementedDialects()).toEqual(expect.arrayContaining(['anthropic.messages', 'anthropic.count_tokens']));
    expect([anthropicMessages.operation, anthropicCountTokens.operation]).toEqual(['generate', 'count_tokens']);
    expect(anthropicMessages.framing).toEqual({ contentType: 'text/event-stream', keepalive: 'event: ping\ndata: {"type": "ping"}\n\n' });
    expect(anthropicCountTokens.framing).toBeUndefined();
  });

  it('route on the model and the stream flag', () => {
    const body = JSON.parse(RAW) as MessagesRequestPayload;
    expect(anthropicMessages.routing(body)).toEqual({ model: 'fast', stream: true });
    expect(anthropicMessages.routing({ ...body, stream: undefined })).toEqual({ model: 'fast', stream: false });
    expect(anthropicCountTokens.routing({ model: 'fast', messages: body.messages })).toEqual({ model: 'fast', stream: false });
  });

  it('pass a request through byte for byte but the model; the lab defaults fill only what is missing', () => {
    const out = Buffer.from(anthropicMessages.passThrough!(Buffer.from(RAW), { model: 'claude-haiku-4-5', stream: true })).toString();
    expect(out).toBe(RAW.replace('"model": "fast"', '"model": "claude-haiku-4-5"'));
    const withDefaults = anthropicMessages.passThrough!(Buffer.from(RAW), { model: 'm', stream: true, defaults: { max_tokens: 5, service_tier: 'standard_only' } });
    expect(JSON.parse(Buffer.from(withDefaults).toString())).toMatchObject({ model: 'm', max_tokens: 32000, service_tier: 'standard_only' });
    const counted = Buffer.from(anthropicCountTokens.passThrough!(Buffer.from('{"model":"fast","messages":[]}'), { model: 'claude-x', stream: false })).toString();
    expect(counted).toBe('{"model":"claude-x","messages":[]}');
  });

  it('answer errors in Anthropic\'s shape', () => {
    expect(anthropicCountTokens.error(new GatewayError('unauthorized', 'no key'))).toEqual({ status: 401, body: '{"type":"error","error":{"type":"authentication_error","message":"no key"}}' });
  });

  it('translate both ways: an Anthropic request through the chat form to an Anthropic backend keeps its meaning', () => {
    const client = {
      model: 'fast', max_tokens: 500, system: 'Be brief.', stop_sequences: ['END'], temperature: 0.3, top_k: 20, metadata: { user_id: 'u1' },
      tools: [{ name: 'get_weather', description: 'Weather', input_schema: { type: 'object' as const, properties: { location: { type: 'string' } } } }],
      tool_choice: { type: 'any' as const, disable_parallel_tool_use: true },
      messages: [
        { role: 'user' as const, content: 'Weather in Paris?' },
        { role: 'assistant' as const, content: [{ type: 'tool_use' as const, id: 'toolu_1', name: 'get_weather', input: { location: 'Paris' } }] },
        { role: 'user' as const, content: [{ type: 'tool_result' as const, tool_use_id: 'toolu_1', content: '15°C' }] },
      ],
    };
    const internal = anthropicMessages.requestToInternal!(client);
    const backend = anthropicMessages.requestFromInternal!(internal, { model: 'claude-haiku-4-5', stream: false });
    expect(backend).toEqual({
      ...client,
      model: 'claude-haiku-4-5',
      stream: false,
      messages: [
        { role: 'user', content: [{ type: 'text', text: 'Weather in Paris?' }] },
        client.messages[1],
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: '15°C' }] },
      ],
    });
  });

  it('translate answers both ways: an Anthropic Message through the chat form gives the same Message', () => {
    const message = {
      id: 'msg_r1', type: 'message', role: 'assistant', model: 'fast',
      content: [{ type: 'thinking', thinking: 'hm', signature: '' }, { type: 'text', text: 'Hi' }, { type: 'tool_use', id: 'toolu_1', name: 'f', input: { a: 1 } }],
      stop_reason: 'tool_use', stop_sequence: null,
      usage: { input_tokens: 10, cache_creation_input_tokens: 3, cache_read_input_tokens: 4, output_tokens: 5 },
    };
    const internal = anthropicMessages.answerToInternal!(message, CONTEXT) as ChatCompletion;
    expect(JSON.parse(anthropicMessages.answerFromInternal!(internal, CONTEXT, {} as never))).toEqual(message);

    // And a stream: decoded to chunks, encoded again, it is the same event sequence. (Chunks carry
    // usage at the end only, so the counts are 0 in message_start and whole in message_delta.)
    const events = [
      { type: 'message_start', message: { ...message, content: [], stop_reason: null, usage: { input_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 0 } } },
      { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } },
      { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Hi' } },
      { type: 'content_block_stop', index: 0 },
      { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { input_tokens: 10, cache_creation_input_tokens: 3, cache_read_input_tokens: 4, output_tokens: 5 } },
      { type: 'message_stop' },
    ];
    const wire = events.map((e) => `event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`).join('');
    const decoder = anthropicMessages.createDecoder!(CONTEXT);
    const chunks = decoder.push(Buffer.from(wire)) as ChatChunk[];
    const encoder = anthropicMessages.createEncoder!(CONTEXT, {} as never);
    expect(chunks.map((c) => encoder.push(c)).join('') + encoder.end()).toBe(wire);
  });

  it('give the count_tokens prompt in the chat form, for a tokenizer', () => {
    const internal = anthropicCountTokens.requestToInternal!({ model: 'fast', system: 'x', messages: [{ role: 'user', content: 'hi' }] });
    expect(internal).toEqual({ form: 'chat', request: { model: 'fast', messages: [{ role: 'system', content: 'x' }, { role: 'user', content: 'hi' }] } satisfies ChatRequest });
  });
});

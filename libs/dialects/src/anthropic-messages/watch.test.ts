import { describe, expect, it } from 'vitest';
import { AnthropicStreamWatch, readAnthropicAnswer } from './watch.ts';

function sse(type: string, data: Record<string, unknown>): string {
  return `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
}

const START = sse('message_start', {
  message: {
    id: 'msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY', type: 'message', role: 'assistant', content: [], model: 'claude-sonnet-4-5',
    stop_reason: null, stop_sequence: null, usage: { input_tokens: 472, cache_creation_input_tokens: 1000, cache_read_input_tokens: 2000, output_tokens: 2 },
  },
});
/** A stream as Anthropic's streaming reference shows it: thinking, text, a tool call, pings between. */
const STREAM = [
  START,
  sse('content_block_start', { index: 0, content_block: { type: 'thinking', thinking: '', signature: '' } }),
  sse('ping', {}),
  sse('content_block_delta', { index: 0, delta: { type: 'thinking_delta', thinking: 'Let me solve this.' } }),
  sse('content_block_delta', { index: 0, delta: { type: 'signature_delta', signature: 'EqQBCgIYAhIM' } }),
  sse('content_block_stop', { index: 0 }),
  sse('content_block_start', { index: 1, content_block: { type: 'text', text: '' } }),
  sse('content_block_delta', { index: 1, delta: { type: 'text_delta', text: 'Okay, let me check: "usage" and "model" are words.' } }),
  sse('content_block_stop', { index: 1 }),
  sse('content_block_start', { index: 2, content_block: { type: 'tool_use', id: 'toolu_01T1x1fJ34qAmk2tNTrN7Up6', name: 'get_weather', input: {} } }),
  sse('content_block_delta', { index: 2, delta: { type: 'input_json_delta', partial_json: '{"location": "San Fra' } }),
  sse('content_block_delta', { index: 2, delta: { type: 'input_json_delta', partial_json: 'ncisco, CA"}' } }),
  sse('content_block_stop', { index: 2 }),
  sse('message_delta', { delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { output_tokens: 89 } }),
  sse('message_stop', {}),
].join('');

describe('AnthropicStreamWatch', () => {
  it('passes every byte through unchanged, whatever the cuts, and reads the facts', () => {
    const bytes = Buffer.from(STREAM);
    for (const size of [1, 3, 50, 333, bytes.length]) {
      const watch = new AnthropicStreamWatch();
      const out: Buffer[] = [];
      for (let at = 0; at < bytes.length; at += size) {
        const forwarded = watch.push(bytes.subarray(at, at + size));
        if (forwarded) out.push(Buffer.from(forwarded));
      }
      const tail = watch.flush();
      if (tail) out.push(Buffer.from(tail));
      expect(Buffer.concat(out).equals(bytes)).toBe(true);
      expect({ size, complete: watch.complete, hasContent: watch.hasContent, error: watch.error, facts: watch.facts }).toEqual({
        size, complete: true, hasContent: true, error: undefined,
        facts: { responseModel: 'claude-sonnet-4-5', inputTokens: 472 + 1000 + 2000, cachedTokens: 2000, outputTokens: 89, finishReason: 'tool_use' },
      });
    }
  });

  it('sees content at the first text or thinking, not at the start, a ping or an empty block', () => {
    const watch = new AnthropicStreamWatch();
    const events = STREAM.split(/(?<=\n\n)/);
    const seen = events.map((event) => {
      watch.push(Buffer.from(event));
      return watch.hasContent;
    });
    expect(seen.indexOf(true)).toBe(3);
    expect(watch.complete).toBe(true);
  });

  it('sees content at a tool_use block, and takes message_delta\'s cumulative input counts', () => {
    const watch = new AnthropicStreamWatch();
    watch.push(Buffer.from(START + sse('content_block_start', { index: 0, content_block: { type: 'tool_use', id: 't', name: 'f', input: {} } })));
    expect(watch.hasContent).toBe(true);
    watch.push(Buffer.from(sse('message_delta', {
      delta: { stop_reason: 'end_turn', stop_sequence: null },
      usage: { input_tokens: 500, cache_creation_input_tokens: null, cache_read_input_tokens: 2500, output_tokens: 7 },
    })));
    expect(watch.facts).toMatchObject({ inputTokens: 500 + 1000 + 2500, cachedTokens: 2500, outputTokens: 7, finishReason: 'end_turn' });
    expect(watch.complete).toBe(false);
  });

  it('reports an error event and a malformed one; neither passes on, nor anything after it (the worker ends the stream in the client\'s dialect)', () => {
    const watch = new AnthropicStreamWatch();
    const errorEvent = 'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}\n\n';
    expect(Buffer.from(watch.push(Buffer.from(START + errorEvent + 'event: ping\ndata: {"type":"ping"}\n\n'))!).toString()).toBe(START);
    expect(watch.push(Buffer.from('event: ping\ndata: {"type":"ping"}\n\n'))).toBeUndefined();
    expect(watch.error).toMatchObject({ code: 'backend_unavailable', message: 'anthropic: Overloaded' });
    const malformed = new AnthropicStreamWatch();
    malformed.push(Buffer.from('event: message_start\ndata: {"type":"message_st\n\n'));
    expect(malformed.error).toMatchObject({ code: 'backend_error', message: 'anthropic sent a malformed stream event' });
  });

  it('keeps a last event without its blank line for flush, and reads it there', () => {
    const watch = new AnthropicStreamWatch();
    const last = 'event: message_stop\ndata: {"type":"message_stop"}';
    watch.push(Buffer.from(START + last));
    expect(watch.complete).toBe(false);
    expect(Buffer.from(watch.flush()!).toString()).toBe(last);
    expect(watch.complete).toBe(true);
  });
});

describe('readAnthropicAnswer', () => {
  it('reads the top level only, not a tool input that has the same keys', () => {
    const message = {
      id: 'msg_01', type: 'message', role: 'assistant', model: 'claude-haiku-4-5',
      content: [{ type: 'tool_use', id: 'toolu_1', name: 'report', input: { model: 'fake', stop_reason: 'fake', usage: { input_tokens: 1 } } }],
      stop_reason: 'tool_use', stop_sequence: null,
      usage: { input_tokens: 2095, cache_creation_input_tokens: 0, cache_read_input_tokens: 100, output_tokens: 503 },
    };
    expect(readAnthropicAnswer(Buffer.from(JSON.stringify(message, null, 2)))).toEqual({
      responseModel: 'claude-haiku-4-5', finishReason: 'tool_use', inputTokens: 2195, outputTokens: 503, cachedTokens: 100,
    });
    expect(readAnthropicAnswer(Buffer.from('[1,2]'))).toEqual({});
  });
});

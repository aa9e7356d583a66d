import { describe, expect, it } from 'vitest';
import { RecordSplitter, parseSseEvent } from './framing.ts';

const records = (splitter: RecordSplitter, input: string): string[] => {
  const cut = splitter.push(Buffer.from(input));
  return cut ? cut.records.map(([s, e]) => cut.data.subarray(s, e).toString()) : [];
};

describe('RecordSplitter', () => {
  it('cuts SSE at blank lines, across reads, with LF and CRLF line ends', () => {
    const sse = new RecordSplitter('sse');
    expect(records(sse, 'data: 1\n\ndata: ')).toEqual(['data: 1\n\n']);
    expect(records(sse, '2\n')).toEqual([]);
    expect(records(sse, '\nevent: x\r\ndata: 3\r\n\r\n')).toEqual(['data: 2\n\n', 'event: x\r\ndata: 3\r\n\r\n']);
    expect(sse.flush()).toBeUndefined();
    records(sse, 'data: tail');
    expect(sse.flush()?.toString()).toBe('data: tail');
  });
  it('cuts NDJSON at newlines', () => {
    const lines = new RecordSplitter('ndjson');
    expect(records(lines, '{"a":1}\n{"b"')).toEqual(['{"a":1}\n']);
    expect(records(lines, ':2}\n')).toEqual(['{"b":2}\n']);
  });
});

describe('parseSseEvent', () => {
  it('reads the event name and joins multi-line data', () => {
    expect(parseSseEvent(Buffer.from('event: message_start\ndata: {"a":\ndata: 1}\n\n'))).toEqual({ event: 'message_start', data: '{"a":\n1}' });
    expect(parseSseEvent(Buffer.from(': comment\n\n'))).toEqual({ event: undefined, data: undefined });
    expect(parseSseEvent(Buffer.from('data:[DONE]\r\n\r\n')).data).toBe('[DONE]');
  });
});

/*
 * The two ways a streamed answer is framed: server-sent events (OpenAI, Anthropic) and
 * newline-delimited JSON (Ollama). Splitters cut a byte stream at event boundaries without copying
 * more than the tail of an event that straddles two reads.
 */

const LF = 0x0a;
const CR = 0x0d;

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Cuts a byte stream into whole records: SSE events (ending in a blank line) or NDJSON lines.
 * `push` returns the bytes of the records it completed, as one buffer, and each record's span in it.
 */
export class RecordSplitter {
  readonly #blankLine: boolean;
  #tail: Buffer | undefined;

  /** `sse`: records end with a blank line; `ndjson`: with a newline. */
  constructor(kind: 'sse' | 'ndjson') {
    this.#blankLine = kind === 'sse';
  }

  push(bytes: Uint8Array): { data: Buffer; records: [start: number, end: number][] } | undefined {
    const data = this.#tail ? Buffer.concat([this.#tail, bytes]) : asBuffer(bytes);
    this.#tail = undefined;
    const records: [number, number][] = [];
    let start = 0;
    for (let i = data.indexOf(LF); i >= 0; i = data.indexOf(LF, i + 1)) {
      if (this.#blankLine) {
        // An SSE event ends with an empty line: LF LF, or CR LF CR LF.
        const next = data[i + 1] === CR ? i + 2 : i + 1;
        if (data[next] !== LF) continue;
        records.push([start, next + 1]);
        start = next + 1;
        i = next;
      } else {
        records.push([start, i + 1]);
        start = i + 1;
      }
    }
    if (start < data.length) this.#tail = Buffer.from(data.subarray(start));
    if (records.length === 0) return undefined;
    return { data: data.subarray(0, start), records };
  }

  /** What is left at the end of the stream (a last record without its terminator). */
  flush(): Buffer | undefined {
    const tail = this.#tail;
    this.#tail = undefined;
    return tail && tail.length > 0 ? tail : undefined;
  }
}

/**
 * The bytes of the records in `cut` that pass on to the client, in one buffer: each record `read`
 * keeps (it returns false for one to drop, e.g. a usage event nobody asked for), up to the record
 * where `failed()` turns true. An error the backend reports, or a malformed record, is not passed
 * on, nor anything after it: the worker ends the stream in the client's dialect instead.
 */
export function passingRecords(cut: { data: Buffer; records: [number, number][] }, read: (record: Buffer) => boolean, failed: () => boolean): Buffer | undefined {
  let parts: Buffer[] | undefined;
  let from = 0;
  let until = cut.data.length;
  for (const [start, end] of cut.records) {
    const keep = read(cut.data.subarray(start, end));
    if (failed()) { until = start; break; }
    if (!keep) {
      (parts ??= []).push(cut.data.subarray(from, start));
      from = end;
    }
  }
  if (!parts && until === cut.data.length) return cut.data;
  (parts ??= []).push(cut.data.subarray(from, Math.max(from, until)));
  const out = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  return out.length > 0 ? out : undefined;
}

/**
 * Decodes records in order until one fails (an error event, a malformed record: `decode` throws):
 * the chunks decoded before it are returned and the failure goes to `failed`, so the content a
 * backend sent in the same read as its error still reaches the client, ahead of the error.
 */
export function decodeUntilFailure<Record, Chunk>(records: Iterable<Record>, decode: (record: Record) => Chunk | Chunk[] | undefined, failed: (error: unknown) => void): Chunk[] {
  const chunks: Chunk[] = [];
  for (const record of records) {
    let decoded: Chunk | Chunk[] | undefined;
    try {
      decoded = decode(record);
    } catch (error) {
      failed(error);
      break;
    }
    if (Array.isArray(decoded)) chunks.push(...decoded);
    else if (decoded !== undefined) chunks.push(decoded);
  }
  return chunks;
}

const DATA_PREFIX = Buffer.from('data:');
const EVENT_PREFIX = Buffer.from('event:');

/** The `event:` name and the `data:` text of one SSE event (multi-line data joined with newlines). */
export function parseSseEvent(record: Buffer): { event: string | undefined; data: string | undefined } {
  let event: string | undefined;
  let data: string | undefined;
  let start = 0;
  while (start < record.length) {
    let end = record.indexOf(LF, start);
    if (end < 0) end = record.length;
    const lineEnd = end > start && record[end - 1] === CR ? end - 1 : end;
    const line = record.subarray(start, lineEnd);
    if (startsWith(line, DATA_PREFIX)) {
      const value = fieldValue(line, DATA_PREFIX.length);
      data = data === undefined ? value : `${data}\n${value}`;
    } else if (startsWith(line, EVENT_PREFIX)) {
      event = fieldValue(line, EVENT_PREFIX.length);
    }
    start = end + 1;
  }
  return { event, data };
}

function startsWith(line: Buffer, prefix: Buffer): boolean {
  return line.length >= prefix.length && line.compare(prefix, 0, prefix.length, 0, prefix.length) === 0;
}

function fieldValue(line: Buffer, from: number): string {
  // One optional space after the colon belongs to the syntax, not the value.
  return line.toString('utf8', line[from] === 0x20 ? from + 1 : from);
}

/** One SSE event as text: `event:` when named, then `data:`. */
export function sseEvent(data: string, event?: string): string {
  return event === undefined ? `data: ${data}\n\n` : `event: ${event}\ndata: ${data}\n\n`;
}

/** The SSE comment a requester sends during a long silence: clients ignore it, proxies see the connection live. */
export const SSE_KEEPALIVE = ': keepalive\n\n';

/*
 * Reading and editing a JSON object's top level in its bytes, without parsing the rest: how a worker
 * sets the model name in a request it passes through, and reads the usage of an answer it passes on.
 * The bytes were parsed and validated once already (by the router, or they come from a backend), so
 * the scanner trusts their syntax.
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const COMMA = 0x2c;
const COLON = 0x3a;

/** Where a value sits in the bytes: `bytes.subarray(start, end)` is its JSON text. */
export interface Span {
  start: number;
  end: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function isSpace(c: number | undefined): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function skipSpace(bytes: Uint8Array, i: number): number {
  while (isSpace(bytes[i])) i++;
  return i;
}

/** The index just past the string that starts at `i` (at its opening quote). */
function endOfString(bytes: Uint8Array, i: number): number {
  for (i++; i < bytes.length; i++) {
    const c = bytes[i];
    if (c === BACKSLASH) i++;
    else if (c === QUOTE) return i + 1;
  }
  return bytes.length;
}

/** The index just past the value that starts at `i`. */
function endOfValue(bytes: Uint8Array, i: number): number {
  const first = bytes[i];
  if (first === QUOTE) return endOfString(bytes, i);
  if (first === OPEN_BRACE || first === OPEN_BRACKET) {
    let depth = 0;
    for (; i < bytes.length; i++) {
      const c = bytes[i];
      if (c === QUOTE) i = endOfString(bytes, i) - 1;
      else if (c === OPEN_BRACE || c === OPEN_BRACKET) depth++;
      else if ((c === CLOSE_BRACE || c === CLOSE_BRACKET) && --depth === 0) return i + 1;
    }
    return bytes.length;
  }
  // A number, true, false or null: up to the next delimiter.
  while (i < bytes.length && bytes[i] !== COMMA && bytes[i] !== CLOSE_BRACE && bytes[i] !== CLOSE_BRACKET && !isSpace(bytes[i])) i++;
  return i;
}

function keyText(bytes: Uint8Array, start: number, end: number): string {
  // Keys are short; only escaped ones need JSON's own decoding.
  const raw = bytes.subarray(start + 1, end - 1);
  return raw.includes(BACKSLASH) ? (JSON.parse(decoder.decode(bytes.subarray(start, end))) as string) : decoder.decode(raw);
}

/**
 * The spans of the values of `keys` at the top level of the JSON object in `bytes` (the last one
 * where a key repeats, as JSON.parse reads it). Undefined when `bytes` is not an object.
 */
export function topLevelSpans(bytes: Uint8Array, keys: readonly string[]): Map<string, Span> | undefined {
  const spans = new Map<string, Span>();
  let i = skipSpace(bytes, 0);
  if (bytes[i] !== OPEN_BRACE) return undefined;
  i = skipSpace(bytes, i + 1);
  while (i < bytes.length && bytes[i] !== CLOSE_BRACE) {
    if (bytes[i] !== QUOTE) return undefined;
    const keyEnd = endOfString(bytes, i);
    const key = keyText(bytes, i, keyEnd);
    i = skipSpace(bytes, keyEnd);
    if (bytes[i] !== COLON) return undefined;
    const start = skipSpace(bytes, i + 1);
    const end = endOfValue(bytes, start);
    if (keys.includes(key)) spans.set(key, { start, end });
    i = skipSpace(bytes, end);
    if (bytes[i] === COMMA) i = skipSpace(bytes, i + 1);
  }
  return spans;
}

/** The parsed value of one top-level key, or undefined when absent. */
export function readTopLevel(bytes: Uint8Array, key: string): unknown {
  const span = topLevelSpans(bytes, [key])?.get(key);
  return span ? JSON.parse(decoder.decode(bytes.subarray(span.start, span.end))) : undefined;
}

/**
 * The object in `bytes` with the top-level `values` set (each replacing the key's value where it is,
 * or added at the front where it is absent) and every other byte unchanged. `undefined` removes a key.
 */
export function setTopLevel(bytes: Uint8Array, values: Record<string, unknown>): Uint8Array {
  const keys = Object.keys(values);
  const spans = topLevelSpans(bytes, keys);
  if (!spans) throw new TypeError('setTopLevel: not a JSON object');
  const edits: { start: number; end: number; text: string }[] = [];
  let added = '';
  for (const key of keys) {
    const value = values[key];
    const span = spans.get(key);
    if (span && value === undefined) edits.push(removal(bytes, span));
    else if (span) edits.push({ start: span.start, end: span.end, text: JSON.stringify(value) });
    else if (value !== undefined) added += `${JSON.stringify(key)}:${JSON.stringify(value)},`;
  }
  if (added) {
    const open = bytes.indexOf(OPEN_BRACE);
    const empty = bytes[skipSpace(bytes, open + 1)] === CLOSE_BRACE;
    edits.push({ start: open + 1, end: open + 1, text: empty ? added.slice(0, -1) : added });
  }
  return applyEdits(bytes, edits);
}

/** The edit that removes a member: from its key to the comma after it (or before it, for the last one). */
function removal(bytes: Uint8Array, value: Span): { start: number; end: number; text: string } {
  // Walk back from the value over the colon and the key to the member's start.
  let start = value.start - 1;
  while (bytes[start] !== COLON) start--;
  start--;
  while (isSpace(bytes[start])) start--;
  start--; // closing quote of the key
  while (!(bytes[start] === QUOTE && bytes[start - 1] !== BACKSLASH)) start--;
  let end = skipSpace(bytes, value.end);
  if (bytes[end] === COMMA) return { start, end: skipSpace(bytes, end + 1), text: '' };
  // The last member: take the comma before it instead.
  let before = start - 1;
  while (isSpace(bytes[before])) before--;
  if (bytes[before] === COMMA) start = before;
  end = value.end;
  return { start, end, text: '' };
}

function applyEdits(bytes: Uint8Array, edits: { start: number; end: number; text: string }[]): Uint8Array {
  edits.sort((a, b) => a.start - b.start);
  const parts: Uint8Array[] = [];
  let at = 0;
  for (const edit of edits) {
    parts.push(bytes.subarray(at, edit.start), encoder.encode(edit.text));
    at = edit.end;
  }
  parts.push(bytes.subarray(at));
  return Buffer.concat(parts);
}

/**
 * The value after `"key"` in `bytes` from `from` on, found without parsing: a string's text, `null`,
 * or undefined when the key does not occur. For answer facts in events that pass through
 * (`finish_reason`, `stop_reason`); a value that is not a string or null is returned as its raw text.
 */
export function scanValueAfterKey(bytes: Uint8Array, key: Uint8Array, from = 0): string | null | undefined {
  const buffer = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const at = buffer.indexOf(key, from);
  if (at < 0) return undefined;
  let i = skipSpace(buffer, at + key.length);
  if (buffer[i] !== COLON) return scanValueAfterKey(buffer, key, at + key.length);
  i = skipSpace(buffer, i + 1);
  if (buffer[i] === QUOTE) return JSON.parse(decoder.decode(buffer.subarray(i, endOfString(buffer, i)))) as string;
  const end = endOfValue(buffer, i);
  const raw = decoder.decode(buffer.subarray(i, end));
  return raw === 'null' ? null : raw;
}

/** `"key"` as bytes, for `scanValueAfterKey` and `Buffer.indexOf`. */
export function keyMarker(key: string): Uint8Array {
  return encoder.encode(JSON.stringify(key));
}

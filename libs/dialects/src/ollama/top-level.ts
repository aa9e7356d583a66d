import { topLevelSpans } from '../json-bytes.ts';

const decoder = new TextDecoder();

/** The parsed values of some top-level keys of a JSON object in bytes (absent keys are missing from the map). */
export function decodeTopLevel(bytes: Uint8Array, keys: readonly string[]): Map<string, unknown> {
  const values = new Map<string, unknown>();
  const spans = topLevelSpans(bytes, keys);
  if (!spans) throw new TypeError('not a JSON object');
  for (const [key, span] of spans) values.set(key, JSON.parse(decoder.decode(bytes.subarray(span.start, span.end))));
  return values;
}

import { decodeTopLevel } from './top-level.ts';
import { setTopLevel } from '../json-bytes.ts';
import type { PassThroughOptions } from '../types.ts';

/**
 * An Ollama client's bytes made ready for an Ollama backend, every other byte unchanged (`options`,
 * `keep_alive`, `think` and fields the gateway does not know survive): the backend's model name;
 * `stream` only when the worker's choice differs from what the body means (Ollama streams when
 * `stream` is absent); and the lab's `defaults` (e.g. `keep_alive`) only where the client sent none.
 */
export function ollamaPassThrough(bytes: Uint8Array, options: PassThroughOptions, endpointStreams: boolean): Uint8Array {
  const defaults = options.defaults ?? {};
  const present = decodeTopLevel(bytes, ['model', 'stream', ...Object.keys(defaults)]);
  const values: Record<string, unknown> = {};
  if (present.get('model') !== options.model) values['model'] = options.model;
  if (endpointStreams && (present.get('stream') !== false) !== options.stream) values['stream'] = options.stream;
  for (const [key, value] of Object.entries(defaults)) {
    // Go reads `null` as not set, so a null from the client takes the lab's default too.
    if (value !== undefined && present.get(key) == null) values[key] = value;
  }
  return Object.keys(values).length === 0 ? bytes : setTopLevel(bytes, values);
}

import { GatewayError } from '@homelab/bus';
import { RecordSplitter } from '../framing.ts';

/** Cuts an Ollama backend's NDJSON stream into whole lines, for the decoders (the watch parses less). */
export class NdjsonLines {
  readonly #splitter = new RecordSplitter('ndjson');

  /** The lines the bytes complete, each with its newline. */
  push(bytes: Uint8Array): Buffer[] {
    const cut = this.#splitter.push(bytes);
    if (!cut) return [];
    return cut.records.map(([start, end]) => cut.data.subarray(start, end));
  }

  /** A last line without its newline, at the end of the body. */
  flush(): Buffer[] {
    const tail = this.#splitter.flush();
    return tail ? [tail] : [];
  }
}

/** One line parsed; undefined for a blank one. Throws GatewayError on a line that is not JSON. */
export function parseNdjsonLine<Line>(bytes: Buffer): Line | undefined {
  const text = bytes.toString('utf8').trim();
  if (text === '') return undefined;
  try {
    return JSON.parse(text) as Line;
  } catch {
    throw new GatewayError('backend_error', 'ollama sent a malformed stream line');
  }
}

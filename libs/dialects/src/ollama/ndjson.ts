import { GatewayError } from '@homelab/bus';
import { RecordSplitter } from '../framing.ts';

/** Parses an Ollama backend's NDJSON stream line by line, for the decoders (the watch parses less). */
export class NdjsonLines<Line> {
  readonly #splitter = new RecordSplitter('ndjson');

  /** The lines the bytes complete, parsed; blank lines are skipped. Throws GatewayError on a line that is not JSON. */
  push(bytes: Uint8Array): Line[] {
    const cut = this.#splitter.push(bytes);
    if (!cut) return [];
    return cut.records.flatMap(([start, end]) => parseLine<Line>(cut.data.subarray(start, end)));
  }

  /** A last line without its newline, at the end of the body. */
  flush(): Line[] {
    const tail = this.#splitter.flush();
    return tail ? parseLine<Line>(tail) : [];
  }
}

function parseLine<Line>(bytes: Buffer): Line[] {
  const text = bytes.toString('utf8').trim();
  if (text === '') return [];
  try {
    return [JSON.parse(text) as Line];
  } catch {
    throw new GatewayError('backend_error', 'ollama sent a malformed stream line');
  }
}

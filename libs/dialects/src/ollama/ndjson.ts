import { GatewayError, toGatewayError } from '@homelab/bus';
import { RecordSplitter, decodeUntilFailure } from '../framing.ts';
import type { StreamDecoder } from '../types.ts';

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

/** Turns one parsed line of an Ollama stream into internal chunks (OllamaChatStream, OllamaGenerateStream). */
export interface OllamaLineReader<Line, Chunk> {
  push(line: Line): Chunk[];
  /** The final line (`done: true`) was read. */
  readonly done: boolean;
  /** From the final line, when Ollama had to load the model. */
  readonly loadMs: number | undefined;
}

/** Reads an Ollama backend's NDJSON bytes as internal chunks, line by line through `reader`. */
export class OllamaStreamDecoder<Line, Chunk> implements StreamDecoder<Chunk> {
  readonly #lines = new NdjsonLines();
  readonly #reader: OllamaLineReader<Line, Chunk>;
  error: GatewayError | undefined;

  constructor(reader: OllamaLineReader<Line, Chunk>) {
    this.#reader = reader;
  }

  get complete(): boolean {
    return this.#reader.done;
  }

  get loadMs(): number | undefined {
    return this.#reader.loadMs;
  }

  push(bytes: Uint8Array): Chunk[] {
    return this.#decode(this.#lines.push(bytes));
  }

  /** The chunks of a last line that came without its newline. */
  flush(): Chunk[] {
    return this.#decode(this.#lines.flush());
  }

  #decode(lines: Buffer[]): Chunk[] {
    if (this.error) return [];
    return decodeUntilFailure(lines, (line) => {
      const parsed = parseNdjsonLine<Line>(line);
      return parsed && this.#reader.push(parsed);
    }, (error) => { this.error = toGatewayError(error, 'backend_error'); });
  }
}

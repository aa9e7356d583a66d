import type { GatewayError } from '@homelab/bus';
import { RecordSplitter, passingRecords } from './framing.ts';
import type { AnswerFacts, StreamWatch } from './types.ts';

/**
 * What every watch over a stream passing through shares: the bytes are cut into whole records (SSE
 * events or NDJSON lines), each record is read once by the dialect's `read`, and the records pass
 * on as the backend sent them, up to the first error (docs/dialects.md). A dialect's watch says only
 * how to read one record.
 */
export abstract class RecordWatch<Facts extends AnswerFacts = AnswerFacts> implements StreamWatch {
  readonly #splitter: RecordSplitter;
  hasContent = false;
  complete = false;
  abstract facts: Facts;
  error: GatewayError | undefined;

  constructor(kind: 'sse' | 'ndjson') {
    this.#splitter = new RecordSplitter(kind);
  }

  push(bytes: Uint8Array): Uint8Array | undefined {
    if (this.error) return undefined;
    const cut = this.#splitter.push(bytes);
    return cut && passingRecords(cut, (record) => this.read(record), () => this.error !== undefined);
  }

  flush(): Uint8Array | undefined {
    const tail = this.#splitter.flush();
    if (!tail || this.error) return undefined;
    return this.read(tail) && !this.error ? tail : undefined;
  }

  /** Reads one record; false drops it (the usage event the client did not ask for). Sets `error` to end the stream. */
  protected abstract read(record: Buffer): boolean;
}

import { createHash } from 'node:crypto';
import type { JetStreamManager, MsgRequest, NextMsgRequest } from '@nats-io/jetstream';
import type { ObjectInfo, ObjectStore } from '@nats-io/obj';

/*
 * Reading a file of a JetStream object store without a consumer.
 *
 * nats.js's `ObjectStore.get`/`getBlob` make an ordered push consumer for every read and never delete
 * it: the server keeps it until its 5-minute inactivity threshold, so a page of thumbnails left hundreds
 * of consumers on `OBJ_images` and each read paid for creating one (docs/performance.md, "Images").
 * Here the chunks are fetched one by one with the stream's message get (`$JS.API.STREAM.MSG.GET.<stream>`,
 * `next_by_subj` the object's chunk subject): answered by the stream's leader, so a file written a moment
 * ago is there (a direct get may be answered by a replica that has not got it yet), and nothing is left
 * on the server. The size and the SHA-256 digest of the object's info are checked, as `getBlob` did.
 */

/** What the read needs of an object's info (an `ObjectInfo` from `ObjectStore.info`). */
export type StoredObject = Pick<ObjectInfo, 'bucket' | 'name' | 'nuid' | 'size' | 'chunks' | 'digest'>;

/** The object's bytes differ from what its info says (size, digest, chunk count): never served. */
export class CorruptObjectError extends Error {
  override readonly name = 'CorruptObjectError';
}

const DIGEST_PREFIX = 'SHA-256=';

/**
 * The chunks of an object, in order, read by message get. The last chunk is yielded only once the
 * size and digest of the whole have been checked: a reader that runs to the end has checked bytes,
 * or gets a CorruptObjectError.
 */
export async function* readObjectChunks(jsm: JetStreamManager, object: StoredObject): AsyncGenerator<Uint8Array, void, undefined> {
  const expected = parseObjectDigest(object);
  const stream = `OBJ_${object.bucket}`;
  const subject = `$O.${object.bucket}.C.${object.nuid}`;
  const hash = createHash('sha256');
  let bytes = 0;
  let nextSeq = 0;
  let previous: Uint8Array | undefined;
  for (let chunk = 0; chunk < object.chunks; chunk++) {
    const request: NextMsgRequest = { next_by_subj: subject, seq: nextSeq };
    // The server (2.9+) takes `next_by_subj` in STREAM.MSG.GET; nats.js types it for direct get only.
    const message = await jsm.streams.getMessage(stream, request as MsgRequest);
    if (!message) throw new CorruptObjectError(`object ${object.name} in ${object.bucket}: chunk ${chunk + 1} of ${object.chunks} is missing (deleted or replaced while read?)`);
    nextSeq = message.seq + 1;
    bytes += message.data.byteLength;
    if (bytes > object.size) throw new CorruptObjectError(`object ${object.name} in ${object.bucket}: its chunks hold more than its size (${object.size} bytes)`);
    hash.update(message.data);
    if (previous) yield previous;
    previous = message.data;
  }
  if (bytes !== object.size) throw new CorruptObjectError(`object ${object.name} in ${object.bucket}: read ${bytes} bytes, its size is ${object.size}`);
  const computed = hash.digest();
  if (!computed.equals(expected)) {
    throw new CorruptObjectError(`object ${object.name} in ${object.bucket}: digests differ (expected ${object.digest}, computed ${DIGEST_PREFIX}${computed.toString('base64url')})`);
  }
  if (previous) yield previous;
}

/** The whole object, read by message get into one buffer of its size (what `getBlob` returned). */
export async function readObject(jsm: JetStreamManager, object: StoredObject): Promise<Uint8Array> {
  const data = new Uint8Array(object.size);
  let offset = 0;
  // readObjectChunks stops before more than `size` bytes arrive, so every chunk fits.
  for await (const chunk of readObjectChunks(jsm, object)) {
    data.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return data;
}

/**
 * The 32 bytes of `SHA-256=<digest>`: base64url (padded or not) as nats.js and the Go client write it,
 * or hex, as some older clients did (nats.js reads both too).
 */
export function parseObjectDigest(object: Pick<StoredObject, 'bucket' | 'name' | 'digest'>): Buffer {
  const text = object.digest.startsWith(DIGEST_PREFIX) ? object.digest.slice(DIGEST_PREFIX.length) : undefined;
  const digest = text === undefined ? undefined
    : /^[0-9a-fA-F]{64}$/.test(text) ? Buffer.from(text, 'hex')
    : /^[A-Za-z0-9_+/-]{43}=?$/.test(text) ? Buffer.from(text, 'base64url')
    : undefined;
  if (!digest || digest.byteLength !== 32) throw new CorruptObjectError(`object ${object.name} in ${object.bucket}: unknown digest '${object.digest.slice(0, 80)}'`);
  return digest;
}

/** `getBlob` without its consumer: an object's bytes by name, or null when there is none (or it was deleted). */
export async function readObjectByName(jsm: JetStreamManager, store: Pick<ObjectStore, 'info'>, name: string): Promise<Uint8Array | null> {
  const info = await store.info(name);
  return info && !info.deleted ? readObject(jsm, info) : null;
}

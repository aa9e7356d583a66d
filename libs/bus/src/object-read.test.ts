import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { Objm, type ObjectStore } from '@nats-io/obj';
import { nuid, type NatsConnection } from '@nats-io/transport-node';
import { connectAs, startNatsServer, type TestNatsServer } from '@homelab/testing';
import { CorruptObjectError, ImageFiles, IMAGES_BUCKET, parseObjectDigest, readObject, readObjectByName, readObjectChunks } from './index.ts';

/*
 * Reading the `images` object store by message get (object-read.ts), on a real nats-server with the
 * project's users: the ingress writes, the ingress, a worker and a script read, and no consumer is left.
 */

let nats: TestNatsServer;
let writer: NatsConnection & AsyncDisposable;
let store: ObjectStore;
let jsm: JetStreamManager;

beforeAll(async () => {
  nats = await startNatsServer();
  writer = await connectAs(nats, 'ingress');
  store = (await ImageFiles.open(writer, { replicas: 1, ttlHours: 1 })).store;
  jsm = await jetstreamManager(writer);
});
afterAll(async () => {
  await writer?.close();
  await nats?.[Symbol.asyncDispose]();
});

const consumersOnImages = async (): Promise<string[]> => {
  const names: string[] = [];
  for await (const c of jsm.consumers.list(`OBJ_${IMAGES_BUCKET}`)) names.push(c.name);
  return names;
};

/** Stores `data` as `name` the way any client does, in chunks of at most `chunkSize` bytes. */
async function put(name: string, data: Uint8Array, chunkSize?: number): Promise<void> {
  await store.putBlob({ name, ...(chunkSize && { options: { max_chunk_size: chunkSize } }) }, data);
}

/**
 * An object written by hand, as the store holds it: its chunks on `$O.images.C.<nuid>` with another
 * object's chunks between them, and a meta message saying `digestOf`'s SHA-256.
 */
async function forge(name: string, chunks: Uint8Array[], digestOf: Uint8Array): Promise<void> {
  const js = jetstream(writer);
  const id = nuid.next();
  for (const chunk of chunks) {
    await js.publish(`$O.${IMAGES_BUCKET}.C.${id}`, chunk);
    await js.publish(`$O.${IMAGES_BUCKET}.C.${nuid.next()}`, randomBytes(16));
  }
  const size = chunks.reduce((n, c) => n + c.byteLength, 0);
  const meta = {
    name, bucket: IMAGES_BUCKET, nuid: id, size, chunks: chunks.length, mtime: new Date().toISOString(),
    digest: `SHA-256=${createHash('sha256').update(digestOf).digest('base64url')}=`, options: { max_chunk_size: 1000 },
  };
  await js.publish(`$O.${IMAGES_BUCKET}.M.${Buffer.from(name).toString('base64').replaceAll('+', '-').replaceAll('/', '_')}`, JSON.stringify(meta));
}

describe('readObject (object store files by message get)', () => {
  it('reads objects of many chunks, of one, and empty ones byte for byte, as every reader user, leaving no consumer', async () => {
    const files = {
      'img_many_small_chunks_0001': randomBytes(2500), // 3 chunks of at most 1000 bytes
      'img_default_chunk_size_0001': randomBytes(300_000), // 3 chunks of 128 KiB
      'img_exactly_two_chunks_001': randomBytes(2000),
      'img_one_chunk_only_000001': randomBytes(700),
      'img_empty_file_0000000001': new Uint8Array(0),
    };
    for (const [name, data] of Object.entries(files)) await put(name, data, name === 'img_default_chunk_size_0001' ? undefined : 1000);
    expect((await store.info('img_many_small_chunks_0001'))?.chunks).toBe(3);
    expect((await store.info('img_default_chunk_size_0001'))?.chunks).toBe(3);
    expect((await store.info('img_empty_file_0000000001'))?.chunks).toBe(0);

    for (const user of ['ingress', 'worker-comfyui', 'worker-cloud', 'scripts'] as const) {
      await using nc = await connectAs(nats, user);
      const reader = await jetstreamManager(nc, { checkAPI: false });
      const opened = await new Objm(nc).open(IMAGES_BUCKET);
      for (const [name, data] of Object.entries(files)) {
        const read = await readObjectByName(reader, opened, name);
        expect(read, `${user} reading ${name}`).toEqual(new Uint8Array(data));
      }
      expect(await readObjectByName(reader, opened, 'img_never_stored_00000001')).toBeNull();
    }
    expect(await consumersOnImages()).toEqual([]);
  });

  it('gives the chunks in order, skipping other objects\' chunks between them', async () => {
    const parts = [randomBytes(1000), randomBytes(1000), randomBytes(10)];
    const whole = Buffer.concat(parts);
    await forge('img_interleaved_chunks_0001', parts, whole);
    const info = (await store.info('img_interleaved_chunks_0001'))!;
    const chunks: Uint8Array[] = [];
    for await (const chunk of readObjectChunks(jsm, info)) chunks.push(chunk);
    expect(chunks.map((c) => Buffer.from(c))).toEqual(parts);
    expect(Buffer.from(await readObject(jsm, info))).toEqual(whole);
  });

  it('refuses bytes that do not match the info: a changed byte, a wrong size, a missing chunk, an unknown digest', async () => {
    const parts = [randomBytes(1000), randomBytes(1000), randomBytes(500)];
    const flipped = Buffer.from(parts[1]!);
    flipped[10] = flipped[10]! ^ 0xff;
    await forge('img_corrupted_chunk_000001', [parts[0]!, flipped, parts[2]!], Buffer.concat(parts));
    const corrupt = (await store.info('img_corrupted_chunk_000001'))!;
    await expect(readObject(jsm, corrupt)).rejects.toThrow(CorruptObjectError);
    await expect(readObject(jsm, corrupt)).rejects.toThrow(/img_corrupted_chunk_000001 in images: digests differ \(expected SHA-256=.+, computed SHA-256=.+\)/);
    // The chunk stream never yields its last chunk unchecked.
    const yielded: Uint8Array[] = [];
    await expect((async () => { for await (const c of readObjectChunks(jsm, corrupt)) yielded.push(c); })()).rejects.toThrow(/digests differ/);
    expect(yielded).toHaveLength(2);

    await put('img_sound_file_00000000001', Buffer.concat(parts), 1000);
    const found = (await store.info('img_sound_file_00000000001'))!;
    // ObjectInfo's fields are getters: a plain copy to change them.
    const sound = { bucket: found.bucket, name: found.name, nuid: found.nuid, size: found.size, chunks: found.chunks, digest: found.digest };
    expect(Buffer.from(await readObject(jsm, sound))).toEqual(Buffer.concat(parts));
    await expect(readObject(jsm, { ...sound, size: sound.size - 1 })).rejects.toThrow(/hold more than its size/);
    await expect(readObject(jsm, { ...sound, size: sound.size + 1 })).rejects.toThrow(/read 2500 bytes, its size is 2501/);
    await expect(readObject(jsm, { ...sound, chunks: 4 })).rejects.toThrow(/chunk 4 of 4 is missing/);
    const otherDigest = `SHA-256=${createHash('sha256').update('other bytes').digest('base64url')}=`;
    await expect(readObject(jsm, { ...sound, digest: otherDigest })).rejects.toThrow(/digests differ/);
    await expect(readObject(jsm, { ...sound, digest: 'MD5=abc' })).rejects.toThrow(/unknown digest 'MD5=abc'/);
    expect(await consumersOnImages()).toEqual([]);
  });

  it('reads the digests clients write: base64url padded or not, and hex', () => {
    const sum = createHash('sha256').update('x').digest();
    const at = { bucket: IMAGES_BUCKET, name: 'x' };
    expect(parseObjectDigest({ ...at, digest: `SHA-256=${sum.toString('base64url')}=` })).toEqual(sum);
    expect(parseObjectDigest({ ...at, digest: `SHA-256=${sum.toString('base64url')}` })).toEqual(sum);
    expect(parseObjectDigest({ ...at, digest: `SHA-256=${sum.toString('base64')}` })).toEqual(sum);
    expect(parseObjectDigest({ ...at, digest: `SHA-256=${sum.toString('hex')}` })).toEqual(sum);
    expect(() => parseObjectDigest({ ...at, digest: `SHA-256=${sum.toString('base64url').slice(1)}` })).toThrow(CorruptObjectError);
  });

  it('ImageFiles.get answers a file with its info, and nothing for a deleted one', async () => {
    await using nc = await connectAs(nats, 'worker-comfyui');
    const files = await ImageFiles.open(nc, { replicas: 1, ttlHours: 1 });
    const data = randomBytes(3000);
    const ref = await files.put(data, { contentType: 'image/png', jobId: 'imgjob_x', role: 'output' });
    const got = await files.get(ref.id);
    expect(Buffer.from(got!.data)).toEqual(data);
    expect(got!.info.metadata).toMatchObject({ contentType: 'image/png', jobId: 'imgjob_x', role: 'output' });
    const info = (await files.info(ref.id))!;
    await files.delete(ref.id);
    expect(await files.get(ref.id)).toBeUndefined();
    // Deleted between its info and its chunks: gone, not an error.
    expect(await files.read(info)).toBeUndefined();
    expect(await consumersOnImages()).toEqual([]);
  });

  it('nats.js getBlob, by contrast, leaves a consumer behind (why readObject exists)', async () => {
    await put('img_read_by_getblob_000001', randomBytes(10));
    expect(await store.getBlob('img_read_by_getblob_000001')).toHaveLength(10);
    expect((await consumersOnImages()).length).toBeGreaterThan(0);
  });
});

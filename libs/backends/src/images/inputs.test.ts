import { describe, expect, it } from 'vitest';
import { ImageJobError } from './executor.ts';
import { inputFileIds, readInput, type InputFiles } from './inputs.ts';

/** The object store's `get`, over files in memory. */
function filesOf(entries: Record<string, { data: Uint8Array; contentType?: string }>): InputFiles {
  return {
    get: (id) => {
      const entry = entries[id];
      return Promise.resolve(entry && { data: entry.data, info: { metadata: entry.contentType ? { contentType: entry.contentType } : undefined } });
    },
  };
}

async function failure(promise: Promise<unknown>): Promise<ImageJobError> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(ImageJobError);
  return err as ImageJobError;
}

describe('an input image', () => {
  it('a data: URL of a PNG, JPEG or WebP gives its bytes and type', async () => {
    expect(await readInput(filesOf({}), { image_url: 'data:image/jpeg;base64,AQID' })).toEqual({ data: Buffer.from([1, 2, 3]), contentType: 'image/jpeg' });
  });

  it('any other URL is a validation failure on `images` (the worker fetches nothing from the network)', async () => {
    for (const image_url of ['https://example.com/cat.png', 'data:image/gif;base64,AQID', 'data:text/plain;base64,AQID']) {
      const err = await failure(readInput(filesOf({}), { image_url }));
      expect(err, image_url).toMatchObject({ code: 'invalid_request', reason: 'validation', param: 'images' });
    }
  });

  it('a file of the object store, with its stored type (PNG when none was kept); a missing one is a validation failure', async () => {
    const files = filesOf({ img_a: { data: Uint8Array.of(9), contentType: 'image/webp' }, img_b: { data: Uint8Array.of(8) } });
    expect(await readInput(files, { file_id: 'img_a' })).toEqual({ data: Uint8Array.of(9), contentType: 'image/webp' });
    expect((await readInput(files, { file_id: 'img_b' })).contentType).toBe('image/png');
    const err = await failure(readInput(files, { file_id: 'img_gone' }));
    expect(err).toMatchObject({ reason: 'validation', param: 'images', message: 'the input image img_gone does not exist (expired?)' });
  });
});

describe('the inputs a job\'s end removes', () => {
  it('its uploaded images and mask, not the data: URLs', () => {
    expect(inputFileIds({ images: [{ file_id: 'img_a' }, { image_url: 'data:image/png;base64,AQID' }, { file_id: 'img_b' }], mask: { file_id: 'img_m' } }))
      .toEqual(['img_a', 'img_b', 'img_m']);
    expect(inputFileIds({})).toEqual([]);
  });
});

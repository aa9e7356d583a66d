import { describe, expect, it } from 'vitest';
import { GatewayError, type ImageFileMeta, type ImageFileRef } from '@homelab/bus';
import { formFieldValue, readEditForm, sniffImageType, type EditFormPart, type ImageUploads } from './edit-form.ts';

const PNG = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex');
const JPEG = Buffer.from('ffd8ffe000104a464946', 'hex');
const WEBP = Buffer.concat([Buffer.from('RIFF'), Buffer.alloc(4), Buffer.from('WEBPVP8 ')]);

/** The uploads as the object store would take them, kept in memory. */
class MemoryUploads implements ImageUploads {
  readonly stored: { id: string; data: Uint8Array; meta: ImageFileMeta }[] = [];

  put(data: Uint8Array, meta: ImageFileMeta): Promise<ImageFileRef> {
    const id = `img_upload${String(this.stored.length).padStart(8, '0')}`;
    this.stored.push({ id, data, meta });
    return Promise.resolve({ id, contentType: meta.contentType, bytes: data.byteLength });
  }
}

const file = (fieldname: string, data: Buffer): EditFormPart => ({ type: 'file', fieldname, toBuffer: () => Promise.resolve(data) });
const field = (fieldname: string, value: string): EditFormPart => ({ type: 'field', fieldname, value });

async function* partsOf(parts: EditFormPart[]): AsyncGenerator<EditFormPart> {
  for (const part of parts) yield part;
}

async function rejection(promise: Promise<unknown>): Promise<GatewayError> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(GatewayError);
  return err as GatewayError;
}

describe('the type of an uploaded image, by its bytes', () => {
  it('knows PNG, JPEG and WebP', () => {
    expect(sniffImageType(PNG)).toBe('image/png');
    expect(sniffImageType(JPEG)).toBe('image/jpeg');
    expect(sniffImageType(WEBP)).toBe('image/webp');
  });

  it('refuses text, a RIFF that is not WebP, and signatures cut short', () => {
    expect(sniffImageType(Buffer.from('hello, not an image'))).toBeUndefined();
    expect(sniffImageType(Buffer.concat([Buffer.from('RIFF'), Buffer.alloc(4), Buffer.from('WAVEfmt ')]))).toBeUndefined();
    expect(sniffImageType(PNG.subarray(0, 8))).toBeUndefined();
    expect(sniffImageType(JPEG.subarray(0, 3))).toBeUndefined();
    expect(sniffImageType(Buffer.alloc(0))).toBeUndefined();
  });
});

describe('form fields as the JSON API has them', () => {
  it('numeric fields become numbers, stream a boolean, other fields stay text', () => {
    expect(formFieldValue('n', '2')).toBe(2);
    expect(formFieldValue('seed', ' 42 ')).toBe(42);
    expect(formFieldValue('output_compression', '80')).toBe(80);
    expect(formFieldValue('strength', '0.35')).toBe(0.35);
    expect(formFieldValue('stream', 'true')).toBe(true);
    expect(formFieldValue('stream', '1')).toBe(true);
    expect(formFieldValue('stream', 'false')).toBe(false);
    expect(formFieldValue('prompt', '42')).toBe('42');
    expect(formFieldValue('size', '512x512')).toBe('512x512');
  });

  it('a numeric field that is empty or not a finite number is a 400 naming the field', () => {
    // strength too: as NaN it went out as JSON null (no strength at all), and '' as 0 (an edit that changes nothing).
    for (const [name, value] of [['n', ''], ['steps', '  '], ['seed', 'abc'], ['partial_images', 'Infinity'], ['strength', ''], ['strength', 'half']] as const) {
      let thrown: unknown;
      try {
        formFieldValue(name, value);
      } catch (err) {
        thrown = err;
      }
      expect(thrown, `${name}=${value}`).toBeInstanceOf(GatewayError);
      expect((thrown as GatewayError).toOpenAI().error).toMatchObject({ code: 'invalid_request', param: name, message: `'${name}' must be a number, not '${value}'` });
    }
  });
});

describe('the multipart edit form as the job API\'s body', () => {
  it('stores each image under the key that sent it, with the type its bytes say, and names them by file id', async () => {
    const uploads = new MemoryUploads();
    const uploaded: string[] = [];
    const body = await readEditForm(partsOf([
      field('model', 'sd15-img2img'), file('image[]', PNG), field('prompt', 'as a watercolour'), file('image[]', JPEG),
      file('mask', WEBP), field('n', '2'), field('stream', 'true'),
    ]), uploads, 'tester', uploaded);
    expect(uploads.stored.map((s) => s.meta)).toEqual([
      { role: 'input', jobId: 'upload', contentType: 'image/png', apiKey: 'tester' },
      { role: 'input', jobId: 'upload', contentType: 'image/jpeg', apiKey: 'tester' },
      { role: 'input', jobId: 'upload', contentType: 'image/webp', apiKey: 'tester' },
    ]);
    expect(uploaded).toEqual(uploads.stored.map((s) => s.id));
    expect(body).toEqual({
      model: 'sd15-img2img', prompt: 'as a watercolour', n: 2, stream: true,
      images: [{ file_id: uploaded[0] }, { file_id: uploaded[1] }], mask: { file_id: uploaded[2] },
    });
  });

  it('without keys the uploads name no key', async () => {
    const uploads = new MemoryUploads();
    await readEditForm(partsOf([file('image', PNG), field('prompt', 'x')]), uploads, undefined, []);
    expect(uploads.stored[0]!.meta).not.toHaveProperty('apiKey');
  });

  it('an image that is no image is refused before it is stored, and what was stored before is left for the caller to remove', async () => {
    const uploads = new MemoryUploads();
    const uploaded: string[] = [];
    const err = await rejection(readEditForm(partsOf([file('image', PNG), file('mask', Buffer.from('hello'))]), uploads, 'tester', uploaded));
    expect(err.toOpenAI().error).toMatchObject({ code: 'invalid_request', param: 'mask', message: "'mask' must be a PNG, JPEG or WebP image" });
    expect(uploads.stored).toHaveLength(1);
    expect(uploaded).toEqual([uploads.stored[0]!.id]);
  });

  it('refuses a file under another name, and an edit without an image', async () => {
    const other = await rejection(readEditForm(partsOf([file('picture', PNG)]), new MemoryUploads(), undefined, []));
    expect(other.toOpenAI().error).toMatchObject({ param: 'picture', message: "unexpected file field 'picture' (image, image[] or mask)" });
    const uploads = new MemoryUploads();
    const none = await rejection(readEditForm(partsOf([field('prompt', 'x'), file('mask', PNG)]), uploads, undefined, []));
    expect(none.toOpenAI().error).toMatchObject({ param: 'image', message: "an edit needs an 'image' file" });
    expect(uploads.stored).toHaveLength(1);
  });

  it('a bad numeric field fails the form after its images are stored (they are the caller\'s to remove)', async () => {
    const uploaded: string[] = [];
    const err = await rejection(readEditForm(partsOf([file('image', PNG), field('n', 'two')]), new MemoryUploads(), undefined, uploaded));
    expect(err.toOpenAI().error).toMatchObject({ param: 'n' });
    expect(uploaded).toHaveLength(1);
  });
});

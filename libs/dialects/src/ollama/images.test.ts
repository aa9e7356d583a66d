import { describe, expect, it } from 'vitest';
import { base64FromDataUrl, imageDataUrl, imageMediaType } from './images.ts';

describe('images', () => {
  it('reads the media type from the first bytes', () => {
    const of = (bytes: number[]): string => imageMediaType(Buffer.from(bytes).toString('base64'));
    expect(of([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0])).toBe('image/png');
    expect(of([0xff, 0xd8, 0xff, 0xe0])).toBe('image/jpeg');
    expect(of([0x47, 0x49, 0x46, 0x38, 0x39, 0x61])).toBe('image/gif');
    expect(of([0x52, 0x49, 0x46, 0x46, 0, 0, 0, 0, 0x57, 0x45, 0x42, 0x50])).toBe('image/webp');
    expect(of([1, 2, 3])).toBe('image/png');
  });

  it('makes data URLs of base64 (line breaks allowed, as Go allows them) and refuses anything else', () => {
    expect(imageDataUrl('/9j/\n4AA=', 'images[0]')).toBe('data:image/jpeg;base64,/9j/4AA=');
    expect(() => imageDataUrl('abc', 'images[0]')).toThrow('illegal base64 data at input byte 0');
    expect(() => imageDataUrl('ab-d', 'images[1]')).toThrow('illegal base64 data at input byte 2');
  });

  it('takes the base64 out of a data URL, and nothing out of another URL', () => {
    expect(base64FromDataUrl('data:image/png;base64,iVBORw0KGgo=')).toBe('iVBORw0KGgo=');
    expect(base64FromDataUrl('https://example.com/cat.png')).toBeUndefined();
    expect(base64FromDataUrl('data:text/plain,hello')).toBeUndefined();
  });
});

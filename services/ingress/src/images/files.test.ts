import { describe, expect, it } from 'vitest';
import { signFileUrl } from '@homelab/bus';
import { decideFileAccess, isSignedImageFileUrl, type FileAccessRequest } from './files.ts';

const ID = 'img_aaaaaaaaaaaaaaaaaaaa';
const TOKEN = 'token-of-the-file';
const NOW = Date.UTC(2026, 0, 1);
const EXPIRES = NOW / 1000 + 3600;
const meta = { token: TOKEN, apiKey: 'owner', contentType: 'image/png' };
const signed = { sig: signFileUrl(ID, TOKEN, EXPIRES), expires: String(EXPIRES) };
const ask = (extra: Partial<FileAccessRequest>): ReturnType<typeof decideFileAccess> =>
  decideFileAccess({ id: ID, meta, sig: undefined, expires: undefined, keyName: undefined, now: NOW, ...extra });

describe('who may read an image file when keys are on', () => {
  it('a valid signature, with or without a key, any key', () => {
    expect(ask(signed)).toBe('allowed');
    expect(ask({ ...signed, keyName: 'other' })).toBe('allowed');
  });

  it('the key that made the file, without a signature', () => {
    expect(ask({ keyName: 'owner' })).toBe('allowed');
  });

  it('another key: the file does not exist for it, signed badly or not at all', () => {
    expect(ask({ keyName: 'other' })).toBe('not_found');
    expect(ask({ keyName: 'other', sig: 'forged', expires: String(EXPIRES) })).toBe('not_found');
  });

  it('an expired or altered signature without a key is refused plainly', () => {
    expect(ask({ ...signed, now: (EXPIRES + 1) * 1000 })).toBe('forbidden');
    expect(ask({ ...signed, expires: String(EXPIRES + 60) })).toBe('forbidden');
    expect(ask({ sig: signFileUrl('img_bbbbbbbbbbbbbbbbbbbb', TOKEN, EXPIRES), expires: String(EXPIRES) })).toBe('forbidden');
    expect(ask({ sig: signed.sig })).toBe('forbidden');
  });

  it('an expired signature still lets the owner\'s key read the file', () => {
    expect(ask({ ...signed, keyName: 'owner', now: (EXPIRES + 1) * 1000 })).toBe('allowed');
  });

  it('a file that names no key (made with keys off) is readable by any key, not by a bad signature', () => {
    const open = { token: TOKEN };
    expect(ask({ meta: open, keyName: 'anyone' })).toBe('allowed');
    expect(ask({ meta: open, sig: 'forged', expires: String(EXPIRES) })).toBe('forbidden');
  });

  it('a file without a token cannot be read by signature', () => {
    expect(ask({ ...signed, meta: { apiKey: 'owner' } })).toBe('forbidden');
  });
});

describe('the signed file URLs the edge lets through without a key', () => {
  it('needs the file route, a sig and an expires', () => {
    expect(isSignedImageFileUrl(`/v1/images/files/${ID}?expires=1&sig=x`)).toBe(true);
    expect(isSignedImageFileUrl(`/v1/images/files/${ID}?sig=x&expires=1`)).toBe(true);
    expect(isSignedImageFileUrl(`/v1/images/files/${ID}?sig=x`)).toBe(false);
    expect(isSignedImageFileUrl(`/v1/images/files/${ID}`)).toBe(false);
    expect(isSignedImageFileUrl('/v1/models?expires=1&sig=x')).toBe(false);
  });
});

import { describe, expect, it } from 'vitest';
import { redactText, redactUrl, snippet } from './redact.ts';

describe('redaction', () => {
  it('strips credentials and queries from URLs', () => {
    expect(redactUrl('http://admin:pw@192.168.1.9:8081/api/v2?apikey=abc#x')).toBe('http://192.168.1.9:8081/api/v2?[redacted]');
    expect(redactUrl('https://192.168.1.8:8006/api2/json/version')).toBe('https://192.168.1.8:8006/api2/json/version');
    expect(redactUrl('not a url')).toBe('[invalid url]');
  });

  it('strips configured secrets and credential-shaped text from messages', () => {
    const text = 'failed for key sk-abcdef with Authorization: Bearer tok_123 and PVEAPIToken=root@pam!h=uuid-1 at http://u:p4ss@host/?token=zzz&x=1 cookie SID=s3ss';
    const out = redactText(text, ['sk-abcdef']);
    for (const secret of ['sk-abcdef', 'tok_123', 'root@pam!h=uuid-1', 'p4ss', 'zzz', 's3ss']) expect(out).not.toContain(secret);
    expect(out).toContain('Bearer [redacted]');
    expect(out).toContain('x=1');
  });

  it('makes peer bytes printable and short', () => {
    expect(snippet('\u0000\u0001garbage\r\n\r\nmore', 10)).toBe('garbage mo…');
  });
});

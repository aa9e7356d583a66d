/*
 * Nothing the health service publishes, stores or logs carries a secret: URLs lose their user
 * info and query, error texts lose every configured secret and anything shaped like a credential.
 */

/** `http://user:pw@host:8080/p?token=x` → `http://host:8080/p?[redacted]`. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}${u.search ? '?[redacted]' : ''}`;
  } catch {
    return '[invalid url]';
  }
}

/** Removes the given secrets and credential-shaped substrings from a text. */
export function redactText(text: string, secrets: readonly string[] = []): string {
  let out = text;
  for (const secret of secrets) {
    if (secret && secret.length >= 4) out = out.split(secret).join('[redacted]');
  }
  return out
    .replace(/\/\/[^/\s:@]+:[^/\s@]+@/g, '//[redacted]@')
    .replace(/\b(api[_-]?key|apikey|token|access_token|password|passwd|secret|sid)=([^&\s;,]+)/gi, '$1=[redacted]')
    .replace(/\b(Bearer\s+|PVEAPIToken=)[^\s,;]+/g, '$1[redacted]');
}

/** Printable, one line, at most `max` characters: safe to put a peer's bytes in an error message. */
export function snippet(data: string | Uint8Array, max = 80): string {
  const text = typeof data === 'string' ? data : Buffer.from(data).toString('utf8');
  const clean = text.replace(/[^\x20-\x7e]+/g, ' ').replace(/\s+/g, ' ').trim();
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}

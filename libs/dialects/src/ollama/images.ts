import { GatewayError } from '@homelab/bus';

/*
 * Ollama carries images as bare base64 (Go's []byte in JSON); OpenAI's chat form wants data URLs
 * with a media type. The type is read from the image's first bytes, as a browser would sniff it.
 */

const SIGNATURES: [prefix: string, mediaType: string][] = [
  ['iVBORw0KGgo', 'image/png'],
  ['/9j/', 'image/jpeg'],
  ['R0lGOD', 'image/gif'],
  ['UklGR', 'image/webp'],
  ['Qk', 'image/bmp'],
];

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Go's base64 decoder's complaint about the first byte it cannot take, as Ollama reports it (HTTP 400). */
function illegalBase64(data: string, param: string): GatewayError {
  let at = 0;
  while (at < data.length && /[A-Za-z0-9+/]/.test(data[at]!)) at++;
  if (at === data.length) at = data.length - (data.length % 4);
  return new GatewayError('invalid_request', `illegal base64 data at input byte ${at}`, { param });
}

/** The media type of a base64 image, from its first bytes; PNG when they are not recognised. */
export function imageMediaType(base64: string): string {
  return SIGNATURES.find(([prefix]) => base64.startsWith(prefix))?.[1] ?? 'image/png';
}

/** A base64 image as a data URL; a GatewayError when it is not base64 (Ollama refuses it too). */
export function imageDataUrl(base64: string, param: string): string {
  const data = base64.replace(/[\r\n]/g, '');
  if (!BASE64.test(data) || data.length % 4 !== 0) throw illegalBase64(data, param);
  return `data:${imageMediaType(data)};base64,${data}`;
}

/** A data URL's base64 part (what Ollama takes); undefined for any other URL, which Ollama cannot fetch. */
export function base64FromDataUrl(url: string): string | undefined {
  const comma = url.indexOf(',');
  if (!url.startsWith('data:') || comma < 0 || !url.slice(0, comma).endsWith(';base64')) return undefined;
  return url.slice(comma + 1);
}

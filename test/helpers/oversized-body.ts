import { request, type IncomingHttpHeaders } from 'node:http';

export interface OversizedAnswer { status: number; text: string; headers: IncomingHttpHeaders }

/**
 * POSTs headers that declare a 5 MiB body, then only its first bytes (`start`): the ingress refuses
 * on the declared length alone, so a test never sends the 5 MiB. Resolves with the answer; the
 * connection is dropped afterwards (the ingress closes it, a reset is expected).
 */
export function postOversizedBody(url: string, headers: Record<string, string>, start: string): Promise<OversizedAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers, 'content-length': 5 * 1024 * 1024 } }, (res) => {
      let text = '';
      res.on('data', (b: Buffer) => { text += b.toString(); });
      res.on('end', () => { resolve({ status: res.statusCode!, text, headers: res.headers }); req.destroy(); });
    });
    req.on('error', (err: NodeJS.ErrnoException) => { if (err.code !== 'ECONNRESET') reject(err); });
    req.flushHeaders();
    req.write(start);
  });
}

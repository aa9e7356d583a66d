import type { FastifyReply, FastifyRequest } from 'fastify';
import { GatewayError, ImageFiles, verifyFileUrl } from '@homelab/bus';
import type { LabConfig } from '@homelab/config';
import type { RelayBus } from '../relay.ts';
import { sendImageError } from './errors.ts';

/*
 * GET /v1/images/files/{id}: the images of jobs answered with `response_format: url`, from the
 * object store `images`. With keys on, a file is readable through a signed URL, or with the key
 * that made it.
 */

/** A signed file URL needs no key (an `<img src>` cannot send one): the route itself checks the signature. */
export function isSignedImageFileUrl(url: string): boolean {
  return url.startsWith('/v1/images/files/') && /[?&]sig=/.test(url) && /[?&]expires=/.test(url);
}

/**
 * The object store, opened on first use: the ingress serves (and answers 503) before NATS is
 * connected. An open that failed is tried again by the next request.
 */
export function imageFilesOpener(bus: RelayBus, config: LabConfig): () => Promise<ImageFiles> {
  let files: Promise<ImageFiles> | undefined;
  return () => {
    if (!bus.nc) throw new GatewayError('backend_unavailable', 'the gateway is not connected to its message bus yet; retry shortly');
    files ??= ImageFiles.open(bus.nc, { replicas: config.nats.replicas, ttlHours: config.images.files.ttlHours })
      .catch((err: unknown) => { files = undefined; throw err; });
    return files;
  };
}

export type FileAccess = 'allowed' | 'not_found' | 'forbidden';

export interface FileAccessRequest {
  id: string;
  /** The file's metadata in the object store: `token` signs its URLs, `apiKey` names the key that made it. */
  meta: Record<string, string>;
  /** The URL's `sig` and `expires`, as given. */
  sig: string | undefined;
  expires: string | undefined;
  /** The name of the key the request presented; undefined without one. */
  keyName: string | undefined;
  /** Epoch milliseconds, for an expiry test; the clock otherwise. */
  now?: number;
}

/**
 * Whether a file may be read when keys are on. To a key other than its maker's, a file does not
 * exist: a 403 would tell it that the id is someone's image. A signature that does not verify,
 * sent without a key, is refused plainly: the URL was ours once (expired, or altered).
 */
export function decideFileAccess(request: FileAccessRequest): FileAccess {
  const { id, meta, sig, expires, keyName } = request;
  const token = meta['token'];
  const signed = sig !== undefined && expires !== undefined && token !== undefined && verifyFileUrl(id, token, Number(expires), sig, request.now);
  if (signed) return 'allowed';
  if (keyName !== undefined && (!meta['apiKey'] || meta['apiKey'] === keyName)) return 'allowed';
  return sig !== undefined && keyName === undefined ? 'forbidden' : 'not_found';
}

/** Answers GET /v1/images/files/{id} with the file's bytes, or a 404 / 403 in OpenAI's shape. */
export async function serveImageFile(request: FastifyRequest, reply: FastifyReply, store: ImageFiles, keysOn: boolean): Promise<void> {
  const { id } = request.params as { id: string };
  const info = await store.info(id);
  const meta = info?.metadata ?? {};
  const query = request.query as { expires?: string; sig?: string };
  const access = !info ? 'not_found'
    : keysOn ? decideFileAccess({ id, meta, sig: query.sig, expires: query.expires, keyName: request.apiKey?.name })
    : 'allowed';
  const data = access === 'allowed' && info ? await store.read(info) : undefined;
  if (access === 'forbidden') {
    sendImageError(reply, new GatewayError('forbidden', 'this image URL is not valid (expired, or not signed for this file)'), request.id);
    return;
  }
  if (!data) {
    sendImageError(reply, new GatewayError('not_found', `No image file '${id.slice(0, 80)}' (it may have expired)`), request.id);
    return;
  }
  reply.header('x-request-id', request.id).header('content-type', meta['contentType'] ?? 'image/png')
    .header('cache-control', 'private, max-age=3600').header('content-length', data.byteLength)
    .send(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
}

import { describe, expect, it } from 'vitest';
import { GatewayError } from '@homelab/bus';
import { asGatewayError } from './errors.ts';

describe('an image request\'s failure as the client sees it', () => {
  it('a GatewayError stays as it is', () => {
    const error = new GatewayError('model_not_found', 'no such model');
    expect(asGatewayError(error, 'x')).toBe(error);
  });

  it('multipart\'s limits are a form too large (413)', () => {
    for (const code of ['FST_REQ_FILE_TOO_LARGE', 'FST_FILES_LIMIT', 'FST_PARTS_LIMIT', 'FST_FIELDS_LIMIT']) {
      const error = asGatewayError(Object.assign(new Error('reach files limit'), { code, statusCode: 413 }), 'the edit request could not be read');
      expect(error.code, code).toBe('body_too_large');
      expect(error.status).toBe(413);
      expect(error.message).toBe('the edit form is too large (reach files limit)');
    }
  });

  it('another 4xx from Fastify is the client\'s malformed request; anything else is ours and tells no internals', () => {
    const malformed = asGatewayError(Object.assign(new Error('Multipart: Boundary not found'), { statusCode: 400 }), 'the edit request could not be read');
    expect(malformed.toOpenAI().error).toMatchObject({ code: 'invalid_request', message: 'the edit request could not be read: Multipart: Boundary not found' });
    const cause = new Error('ECONNRESET at socket.ts:42');
    const ours = asGatewayError(cause, 'the image could not be read');
    expect(ours).toMatchObject({ code: 'internal_error', status: 500, message: 'the image could not be read', cause });
  });
});

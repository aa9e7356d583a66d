import { describe, expect, it } from 'vitest';
import { GatewayError } from '@homelab/bus';
import {
  ollamaError, ollamaManagementForbidden, ollamaModelNotFound, ollamaModelNotPulled, ollamaStreamErrorLine, OLLAMA_MANAGEMENT_PATHS,
} from './errors.ts';

describe("Ollama's error shape", () => {
  it('is {"error": text} with the gateway status', () => {
    expect(ollamaError(new GatewayError('budget_exceeded', 'the monthly budget of key "lab" is spent'))).toEqual({ status: 429, body: '{"error":"the monthly budget of key \\"lab\\" is spent"}' });
    expect(ollamaError(new GatewayError('unauthorized', 'missing API key'))).toEqual({ status: 401, body: '{"error":"missing API key"}' });
    expect(ollamaStreamErrorLine(new GatewayError('backend_error', 'boom'))).toBe('{"error":"boom"}\n');
  });

  it("carries Ollama's own texts for unknown models", () => {
    expect(ollamaError(ollamaModelNotFound('mistral'))).toEqual({ status: 404, body: '{"error":"model \'mistral\' not found"}' });
    expect(ollamaError(ollamaModelNotPulled('mistral'))).toEqual({ status: 404, body: '{"error":"model \\"mistral\\" not found, try pulling it first"}' });
  });

  it('answers model management with 403 and says where to do it', () => {
    for (const path of [...OLLAMA_MANAGEMENT_PATHS, '/api/blobs/sha256:29fdb92e57cf0827ded04ae6461b5931d01fa595843f55d36f5b275a52087dd2']) {
      const { status, body } = ollamaManagementForbidden(path);
      expect(status).toBe(403);
      expect(JSON.parse(body)).toEqual({ error: expect.stringMatching(/^model management \((pull|push|create|copy|delete|blobs)\) is not available through the gateway: manage models on the Ollama node/) });
    }
  });
});

import { FORWARDED_CLIENT_HEADERS, GatewayError, H, nowMs, type Msg } from '@homelab/bus';
import { dialectOf, type Dialect } from '@homelab/dialects';

/** What the router tells a worker about a request, in the headers of the message that carries its bytes. */
export interface WorkerEnvelope {
  requestId: string;
  /** 1-based: the router's attempt number for this request. */
  attempt: number;
  /** Where the answer goes: the requester's inbox (the ingress, or a script). */
  replyTo: string;
  /** The backend's own model id (alias and prefix resolved by the router). */
  model: string;
  /** The model as the client asked for it. */
  requestedModel: string;
  /** The client's dialect: of the request body, and of the answer the worker sends. */
  dialect: Dialect;
  stream: boolean;
  /** The client asked for a usage event in its stream. */
  includeUsage: boolean;
  routeReason: string;
  /** The router's clock start (epoch ms): latency is measured from here. */
  receivedAt: number;
  traceparent: string | undefined;
  /** The name of the API key the router accepted (never the key). */
  keyName: string | undefined;
  /** Client headers for the backend of the same dialect (`anthropic-beta`). */
  forwardedHeaders: Record<string, string>;
}

/**
 * Reads the router's envelope. Only the router may publish worker subjects (nats.conf), and it
 * validated the body, so the worker checks the envelope, not the body again.
 */
export function readEnvelope(msg: Msg): WorkerEnvelope {
  const headers = msg.headers;
  const replyTo = headers?.get(H.replyTo);
  const model = headers?.get(H.upstreamModel);
  if (!headers || !replyTo || !model) throw new GatewayError('invalid_request', `worker request without ${H.replyTo} / ${H.upstreamModel}: only the router sends here`);
  const forwardedHeaders: Record<string, string> = {};
  for (const name of FORWARDED_CLIENT_HEADERS) {
    const value = headers.get(name);
    if (value) forwardedHeaders[name] = value;
  }
  return {
    requestId: headers.get(H.requestId) || 'unknown',
    attempt: Number(headers.get(H.attempt)) || 1,
    replyTo,
    model,
    requestedModel: headers.get(H.requestedModel) || model,
    dialect: dialectOf(headers.get(H.dialect) || 'openai.chat'),
    stream: headers.get(H.streaming) === '1',
    includeUsage: headers.get(H.includeUsage) === '1',
    routeReason: headers.get(H.routeReason) || '',
    receivedAt: Number(headers.get(H.receivedAt)) || nowMs(),
    traceparent: headers.get(H.traceparent) || undefined,
    keyName: headers.get(H.keyName) || undefined,
    forwardedHeaders,
  };
}

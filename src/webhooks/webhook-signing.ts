import { createHmac } from 'node:crypto';

const PREFIX = 'whsec_';

/** The key of a Standard Webhooks secret (`whsec_<base64>`): the bytes the base64 stands for. */
export function signingKey(secret: string): Buffer {
  if (!secret.startsWith(PREFIX)) throw new Error('a webhook signing secret starts with whsec_');
  return Buffer.from(secret.slice(PREFIX.length), 'base64');
}

/**
 * The headers of one delivery attempt, as Standard Webhooks has them: the
 * event's id (the same on every attempt), the attempt's time in Unix seconds,
 * and `v1,` with the base64 HMAC-SHA256 of `id.timestamp.body`.
 */
export function signatureHeaders(
  key: Buffer,
  id: string,
  timestampSeconds: number,
  body: string,
): Record<'webhook-id' | 'webhook-timestamp' | 'webhook-signature', string> {
  const signature = createHmac('sha256', key).update(`${id}.${timestampSeconds}.${body}`).digest('base64');
  return {
    'webhook-id': id,
    'webhook-timestamp': String(timestampSeconds),
    'webhook-signature': `v1,${signature}`,
  };
}

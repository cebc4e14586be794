import { describe, expect, it } from 'vitest';
import { readPostBody } from '../../lib/http/body.ts';
import { MAX_BODY_BYTES, toRequest } from '../../lib/http/request.ts';

const post = { method: 'post', headers: { 'Content-Type': 'application/json' } };

describe('the one request conversion', () => {
  it('keeps the exact bytes and lower-cases header names, a repeated header counting as its first value', () => {
    const req = toRequest({
      ...post,
      headers: { 'X-Hub-Signature-256': 'sha256=ab', Accept: ['a', 'b'], Absent: undefined },
      body: Buffer.from('{"a":"é"}').toString('base64'),
      isBase64Encoded: true,
    });

    expect(req.method).toBe('POST');
    expect(req.headers).toEqual({ 'x-hub-signature-256': 'sha256=ab', accept: 'a' });
    expect(req.body.toString('utf8')).toBe('{"a":"é"}');
    expect(req.bodyProblem).toBeUndefined();
  });

  it.each([
    ['a text body', 'x'.repeat(MAX_BODY_BYTES + 1), false],
    ['a base64 body', Buffer.alloc(MAX_BODY_BYTES + 1).toString('base64'), true],
    ['multi-byte text', 'é'.repeat(MAX_BODY_BYTES / 2 + 1), false],
  ])('marks %s over 1 MiB too large without keeping it', (_name, body, isBase64Encoded) => {
    const req = toRequest({ ...post, body, isBase64Encoded });

    expect(req.bodyProblem).toBe('too-large');
    expect(req.body.byteLength).toBe(0);
    expect(readPostBody(req, { maxBytes: MAX_BODY_BYTES, mediaTypes: ['application/json'] })).toMatchObject({
      ok: false,
      status: 413,
    });
  });

  it('refuses base64 that does not round-trip (400), rather than decoding it loosely', () => {
    const req = toRequest({ ...post, body: '%%%not-base64%%%', isBase64Encoded: true });

    expect(req.bodyProblem).toBe('not-base64');
    expect(readPostBody(req, { maxBytes: MAX_BODY_BYTES, mediaTypes: ['application/json'] })).toMatchObject({
      ok: false,
      status: 400,
    });
  });

  it('checks the method before the body: a GET with a huge body is 405', () => {
    const req = toRequest({ ...post, method: 'GET', body: 'x'.repeat(MAX_BODY_BYTES + 1) });

    expect(readPostBody(req, { maxBytes: MAX_BODY_BYTES, mediaTypes: ['application/json'] })).toMatchObject({
      ok: false,
      status: 405,
    });
  });
});

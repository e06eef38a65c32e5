import { ApiException } from '@kubernetes/client-node';
import { isTransient, retryAfterMs, withRetries } from '../../activities/kube-retry.js';

const apiError = (code: number, headers: Record<string, string> = {}): ApiException<unknown> =>
  new ApiException(code, `HTTP ${code}`, { kind: 'Status', code }, headers);

describe('which Kubernetes API failures are retried', () => {
  it.each([429, 500, 502, 503, 504])('retries HTTP %i', (code) => {
    expect(isTransient(apiError(code))).toBe(true);
  });

  it.each([400, 401, 403, 404, 409, 422])('does not retry HTTP %i', (code) => {
    expect(isTransient(apiError(code))).toBe(false);
  });

  it('retries a refused or reset connection and a socket failure node-fetch reports', () => {
    expect(isTransient(Object.assign(new Error('connect'), { code: 'ECONNREFUSED' }))).toBe(true);
    expect(isTransient(Object.assign(new Error('reset'), { code: 'ECONNRESET' }))).toBe(true);
    expect(isTransient(Object.assign(new Error('x'), { name: 'FetchError', type: 'system' }))).toBe(
      true,
    );
  });

  it('does not retry programming errors', () => {
    expect(isTransient(new TypeError('cannot read properties of undefined'))).toBe(false);
    expect(isTransient(undefined)).toBe(false);
  });
});

describe('Retry-After', () => {
  it('reads seconds from the header whatever its case', () => {
    expect(retryAfterMs(apiError(429, { 'retry-after': '2' }))).toBe(2000);
    expect(retryAfterMs(apiError(429, { 'Retry-After': '1' }))).toBe(1000);
  });

  it('caps a long pause and ignores a missing or unreadable header', () => {
    expect(retryAfterMs(apiError(429, { 'retry-after': '3600' }))).toBe(10_000);
    expect(retryAfterMs(apiError(429))).toBeUndefined();
    expect(retryAfterMs(apiError(503, { 'retry-after': 'Wed, 21 Oct 2026 07:28:00 GMT' }))).toBe(
      undefined,
    );
  });
});

describe('withRetries', () => {
  it('gives up at once on an answer no retry can change', async () => {
    let sent = 0;

    const attempt = withRetries('read pod a/b', () => {
      sent++;
      return Promise.reject(apiError(404));
    });

    await expect(attempt).rejects.toMatchObject({ code: 404 });
    expect(sent).toBe(1);
  });

  it('passes the attempt number to the request and returns its answer', async () => {
    const seen: number[] = [];

    const answer = await withRetries('list pods in a', (n) => {
      seen.push(n);
      return Promise.resolve('pods');
    });

    expect(answer).toBe('pods');
    expect(seen).toEqual([1]);
  });
});

/**
 * Request-level retries for the Kubernetes API. A 429, a 5xx or a dropped connection is retried
 * a few times with jittered exponential backoff (longer when the server sends `Retry-After`),
 * the way client-go treats them; what outlasts that goes to the step's Temporal retry policy.
 * Errors that no retry can fix (400, 401, 403, 404, 422) come back at once.
 */
import { log } from '@temporalio/activity';
import { ApiException } from '@kubernetes/client-node';
import pRetry from 'p-retry';
import { activitySignal } from './context.js';

/** Answers that mean "try again": throttled, or the server or a load balancer in front failed. */
const RETRYABLE_STATUS = new Set([429, 500, 502, 503, 504]);
/** Socket-level failures node-fetch reports when an apiserver restarts or a proxy drops us. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
]);
/** A server asking for a longer pause than this is waited on by the step's retry policy. */
const MAX_RETRY_AFTER_MS = 10_000;

const REQUEST_RETRIES = 4;

/** Whether a failed request may succeed if sent again. */
export function isTransient(err: unknown): boolean {
  if (err instanceof ApiException) return RETRYABLE_STATUS.has(err.code);
  const e = err as { name?: string; code?: string; type?: string } | undefined;
  if (!e) return false;
  if (e.code && NETWORK_CODES.has(e.code)) return true;
  // node-fetch's own errors: a socket closed mid-answer, or a body cut short.
  return e.name === 'FetchError' && (e.type === 'system' || e.type === 'body-timeout');
}

/** The pause the server asked for, from `Retry-After` in seconds, capped. */
export function retryAfterMs(err: unknown): number | undefined {
  if (!(err instanceof ApiException)) return undefined;
  const headers = (err.headers ?? {}) as Record<string, string>;
  const raw = Object.entries(headers).find(([k]) => k.toLowerCase() === 'retry-after')?.[1];
  const seconds = Number(raw);
  if (raw === undefined || !Number.isFinite(seconds) || seconds < 0) return undefined;
  return Math.min(seconds * 1000, MAX_RETRY_AFTER_MS);
}

function describe(err: unknown): string {
  if (err instanceof ApiException) return `HTTP ${err.code}`;
  const e = err as { code?: string; message?: string };
  return e.code ?? e.message ?? String(err);
}

/**
 * Sends one API request through `send`, again on transient failures. `send` gets the attempt
 * number (1 first), so a mutation can tell a first try from a repeat whose first answer was
 * lost. The last error is rethrown unchanged for the caller to translate.
 */
export async function withRetries<T>(
  what: string,
  send: (attempt: number) => Promise<T>,
): Promise<T> {
  return pRetry(send, {
    retries: REQUEST_RETRIES,
    minTimeout: 250,
    maxTimeout: 4_000,
    factor: 2,
    randomize: true,
    signal: activitySignal(),
    shouldRetry: ({ error }) => isTransient(error),
    onFailedAttempt: async ({ error, attemptNumber, retriesLeft }) => {
      if (!isTransient(error) || retriesLeft === 0) return;
      const pause = retryAfterMs(error);
      log.warn('Kubernetes API request failed, retrying', {
        what,
        error: describe(error),
        attempt: attemptNumber,
        retryAfterMs: pause,
      });
      // Retry-After is honoured on top of the backoff p-retry adds after this returns.
      if (pause) await new Promise((r) => setTimeout(r, pause));
    },
  });
}

/**
 * A small JSON client for the bed's own kube-apiserver (bearer token, self-signed TLS). The bed
 * and the kubelet simulator use it instead of the generated client so objects stay plain JSON
 * (no Date conversion) and watches are under our control. Tests use @kubernetes/client-node.
 */
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { parse as parseYaml } from 'yaml';

/** Where and as whom to talk to the apiserver. */
export interface KubeTarget {
  server: string;
  token: string;
}

/** A non-2xx answer from the apiserver. */
export class KubeHttpError extends Error {
  constructor(
    readonly status: number,
    readonly method: string,
    readonly path: string,
    readonly body: string,
  ) {
    super(`${method} ${path} -> ${status}: ${body.slice(0, 300)}`);
    this.name = 'KubeHttpError';
  }
}

/** Options of one request. */
export interface RequestOptions {
  body?: unknown;
  contentType?: string;
  timeoutMs?: number;
}

/** A plain Kubernetes object as JSON. */
export type KubeObject = Record<string, any>;

interface Kubeconfig {
  'current-context': string;
  contexts: { name: string; context: { cluster: string; user: string } }[];
  clusters: { name: string; cluster: { server?: string } }[];
  users: { name: string; user: { token?: string } }[];
}

/** Reads server and token from a kubeconfig's current context (token users only). */
export function loadKubeTarget(kubeconfigPath: string): KubeTarget {
  const kc = parseYaml(readFileSync(kubeconfigPath, 'utf8')) as Kubeconfig;
  const ctx = kc.contexts.find((c) => c.name === kc['current-context'])?.context;
  const cluster = kc.clusters.find((c) => c.name === ctx?.cluster)?.cluster;
  const user = kc.users.find((u) => u.name === ctx?.user)?.user;
  if (!cluster?.server || !user?.token)
    throw new Error(`${kubeconfigPath}: no server/token in current context`);
  return { server: cluster.server, token: user.token };
}

/** JSON-over-HTTPS client; one keep-alive agent per instance. */
export class KubeHttp {
  private readonly agent = new https.Agent({
    keepAlive: true,
    maxSockets: 16,
    rejectUnauthorized: false,
  });

  constructor(readonly target: KubeTarget) {}

  /** Performs one request; resolves with the parsed JSON body, rejects with KubeHttpError. */
  async request<T = KubeObject>(
    method: string,
    path: string,
    opts: RequestOptions = {},
  ): Promise<T> {
    const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const res = await this.send(method, path, payload, opts);
    if (res.status < 200 || res.status > 299)
      throw new KubeHttpError(res.status, method, path, res.text);
    return (res.text ? JSON.parse(res.text) : {}) as T;
  }

  private send(
    method: string,
    path: string,
    payload: string | undefined,
    opts: RequestOptions,
  ): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      const req = https.request(new URL(path, this.target.server), {
        method,
        agent: this.agent,
        headers: this.headers(payload, opts.contentType),
        timeout: opts.timeoutMs ?? 15_000,
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timeout`)));
      req.on('error', reject);
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }),
        );
      });
      req.end(payload);
    });
  }

  private headers(payload: string | undefined, contentType?: string): Record<string, string> {
    const h: Record<string, string> = {
      Authorization: `Bearer ${this.target.token}`,
      Accept: 'application/json',
    };
    if (payload !== undefined) {
      h['Content-Type'] = contentType ?? 'application/json';
      h['Content-Length'] = String(Buffer.byteLength(payload));
    }
    return h;
  }

  /** Merge-patches `path` (RFC 7386). */
  async mergePatch<T = KubeObject>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PATCH', path, { body, contentType: 'application/merge-patch+json' });
  }

  /**
   * Streams a watch; calls `onEvent` per event and resolves when the server ends the stream
   * (timeoutSeconds) or rejects on a transport error. `signal` aborts it.
   */
  watch(
    path: string,
    onEvent: (type: string, obj: KubeObject) => void,
    signal?: AbortSignal,
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      const req = https.request(new URL(path, this.target.server), {
        method: 'GET',
        headers: this.headers(undefined),
        rejectUnauthorized: false,
        signal,
      });
      req.on('error', reject);
      req.on('response', (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          reject(new KubeHttpError(res.statusCode ?? 0, 'WATCH', path, ''));
          return;
        }
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buf += chunk;
          for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (!line) continue;
            const ev = JSON.parse(line) as { type: string; object: KubeObject };
            onEvent(ev.type, ev.object);
          }
        });
        res.on('error', reject);
        res.on('end', () => resolve());
        res.on('close', () => resolve());
      });
      req.end();
    });
  }

  /** Releases pooled sockets so the process can exit. */
  close(): void {
    this.agent.destroy();
  }
}

/** True if `err` is a KubeHttpError with one of `statuses`. */
export function isStatus(err: unknown, ...statuses: number[]): boolean {
  return err instanceof KubeHttpError && statuses.includes(err.status);
}

/** RFC 3339 with second precision, as core/v1 `Time` fields carry. */
export function kubeTime(ms = Date.now()): string {
  return new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
}

/** RFC 3339 with microseconds, as `MicroTime` fields (Lease renewTime) require. */
export function kubeMicroTime(ms = Date.now()): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

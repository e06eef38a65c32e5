/**
 * A TLS proxy in front of the bed's real kube-apiserver that misbehaves on purpose, like an
 * overloaded apiserver or a flaky load balancer: it can refuse a request with a 429 or 5xx
 * (nothing reaches the apiserver), or forward it and then lose the answer (the apiserver did
 * the work, the client sees a 5xx). Every request still lands on the real apiserver or nowhere;
 * nothing here imitates Kubernetes.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, request } from 'node:https';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';

export type Fault =
  /** Answered by the proxy; the apiserver never sees the request. */
  | { kind: 'refuse'; status: 429 | 500 | 502 | 503 | 504; retryAfterSec?: number }
  /** Forwarded and carried out by the apiserver; its answer is replaced by `status`. */
  | { kind: 'lose-answer'; status: 502 | 503 | 504 };

export interface ProxiedRequest {
  /** 1 for the first request through the proxy. */
  n: number;
  method: string;
  path: string;
}

export type FaultPlan = (req: ProxiedRequest) => Fault | undefined;

const REASONS: Record<number, string> = {
  429: 'TooManyRequests',
  500: 'InternalError',
  502: 'BadGateway',
  503: 'ServiceUnavailable',
  504: 'Timeout',
};

export class FaultProxy {
  /** Every request the proxy answered with a fault. */
  readonly injected: (ProxiedRequest & { fault: Fault })[] = [];
  private count = 0;

  private constructor(
    private readonly server: Server,
    private readonly target: URL,
    private readonly plan: FaultPlan,
  ) {}

  /**
   * Listens on 127.0.0.1 with the apiserver's own serving certificate (from its `--cert-dir`),
   * forwarding to `target`.
   */
  static async start(target: string, certDir: string, plan: FaultPlan): Promise<FaultProxy> {
    const server = createServer({
      cert: readFileSync(join(certDir, 'apiserver.crt')),
      key: readFileSync(join(certDir, 'apiserver.key')),
    });
    const proxy = new FaultProxy(server, new URL(target), plan);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => proxy.handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get url(): string {
    return `https://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Requests seen so far. */
  get requests(): number {
    return this.count;
  }

  /** Writes a copy of `kubeconfig` whose clusters point at this proxy; returns its path. */
  rewriteKubeconfig(kubeconfig: string, out: string): string {
    const doc = parse(readFileSync(kubeconfig, 'utf8')) as {
      clusters: { cluster: { server: string } }[];
    };
    for (const c of doc.clusters) c.cluster.server = this.url;
    writeFileSync(out, stringify(doc));
    return out;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const seen = { n: ++this.count, method: req.method ?? 'GET', path: req.url ?? '/' };
    const fault = this.plan(seen);
    if (fault) this.injected.push({ ...seen, fault });
    if (fault?.kind === 'refuse') {
      req.resume();
      answer(res, fault.status, fault.retryAfterSec);
      return;
    }
    const upstream = request(
      {
        host: this.target.hostname,
        port: this.target.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: this.target.host },
        rejectUnauthorized: false,
      },
      (up) => {
        if (fault?.kind === 'lose-answer') {
          up.resume();
          up.on('end', () => answer(res, fault.status));
          return;
        }
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on('error', (err) => {
      if (!res.headersSent) answer(res, 502, undefined, err.message);
      else res.destroy();
    });
    req.pipe(upstream);
  }
}

/** A Kubernetes `Status` failure body, as the apiserver itself sends. */
function answer(res: ServerResponse, status: number, retryAfterSec?: number, why?: string): void {
  const reason = REASONS[status] ?? 'InternalError';
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (retryAfterSec !== undefined) headers['retry-after'] = String(retryAfterSec);
  res.writeHead(status, headers);
  res.end(
    JSON.stringify({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: why ?? `injected by the test bed's fault proxy: ${reason}`,
      reason,
      code: status,
    }),
  );
}

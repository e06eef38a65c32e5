/**
 * A real Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver (token auth, AlwaysAllow,
 * audit log), kube-controller-manager and kube-scheduler, each a detached process of the bed.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';

import { killDaemon, isAlive, spawnDaemon, tailFile, waitFor } from './procs.js';
import type { ProcSpec } from './procs.js';
import type { BedContext, BedState } from './state.js';

/** Identities the apiserver knows (token auth); AlwaysAllow authorises all of them. */
export const BED_USERS = {
  kubemend: { user: 'kubemend', groups: ['kubemend:engines'], kubeconfig: 'kubeconfig' },
  admin: { user: 'bed-admin', groups: ['system:masters'], kubeconfig: 'admin.kubeconfig' },
  kcm: { user: 'system:kube-controller-manager', groups: [], kubeconfig: 'pki/kcm.kubeconfig' },
  scheduler: { user: 'system:kube-scheduler', groups: [], kubeconfig: 'pki/scheduler.kubeconfig' },
} as const;

/** Audit verbs that change state. */
export const MUTATING_VERBS = ['create', 'update', 'patch', 'delete', 'deletecollection'];

const pki = (state: BedState, file: string): string => join(state.dir, 'pki', file);

/** Writes a token kubeconfig for `user` against the bed's apiserver. */
function writeKubeconfig(file: string, state: BedState, user: string, token: string): void {
  const cluster = `kubemend-bed-${state.scenario}`;
  const kc = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      { name: cluster, cluster: { server: state.apiserverUrl, 'insecure-skip-tls-verify': true } },
    ],
    users: [{ name: user, user: { token } }],
    contexts: [{ name: `${user}@${cluster}`, context: { cluster, user, namespace: 'default' } }],
    'current-context': `${user}@${cluster}`,
  };
  writeFileSync(file, toYaml(kc), { mode: 0o600 });
}

/** Generates the SA signing keypair, the token file, the audit policy and all kubeconfigs. */
export function writeControlPlaneFiles(state: BedState): void {
  mkdirSync(join(state.dir, 'pki'), { recursive: true, mode: 0o700 });
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  writeFileSync(state.paths.saKey, privateKey, { mode: 0o600 });
  writeFileSync(pki(state, 'sa.pub'), publicKey);
  const rows: string[] = [];
  for (const u of Object.values(BED_USERS)) {
    const token = randomBytes(24).toString('hex');
    rows.push(`${token},${u.user},${u.user},"${u.groups.join(',')}"`);
    writeKubeconfig(join(state.dir, u.kubeconfig), state, u.user, token);
  }
  writeFileSync(pki(state, 'tokens.csv'), rows.join('\n') + '\n', { mode: 0o600 });
  const policy = {
    apiVersion: 'audit.k8s.io/v1',
    kind: 'Policy',
    omitStages: ['RequestReceived'],
    rules: [{ level: 'Metadata' }],
  };
  writeFileSync(pki(state, 'audit-policy.yaml'), toYaml(policy));
}

function etcdSpec(state: BedState): ProcSpec {
  const client = `http://127.0.0.1:${state.ports.etcdClient}`;
  const peer = `http://127.0.0.1:${state.ports.etcdPeer}`;
  return {
    name: 'etcd',
    command: join(state.binDir, 'etcd'),
    args: [
      '--name=bed',
      `--data-dir=${join(state.dir, 'etcd')}`,
      `--listen-client-urls=${client}`,
      `--advertise-client-urls=${client}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=bed=${peer}`,
      '--unsafe-no-fsync',
      '--log-level=warn',
    ],
    logFile: join(state.dir, 'logs', 'etcd.log'),
    match: join(state.dir, 'etcd'),
  };
}

function apiserverSpec(state: BedState): ProcSpec {
  return {
    name: 'kube-apiserver',
    command: join(state.binDir, 'kube-apiserver'),
    args: [
      `--etcd-servers=http://127.0.0.1:${state.ports.etcdClient}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${state.ports.apiserver}`,
      `--cert-dir=${pki(state, 'apiserver')}`,
      '--service-cluster-ip-range=10.96.0.0/16',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${pki(state, 'sa.pub')}`,
      `--service-account-signing-key-file=${state.paths.saKey}`,
      `--token-auth-file=${pki(state, 'tokens.csv')}`,
      '--anonymous-auth=false',
      '--authorization-mode=AlwaysAllow',
      `--audit-policy-file=${pki(state, 'audit-policy.yaml')}`,
      `--audit-log-path=${state.paths.auditLog}`,
      '--audit-log-format=json',
      '--audit-log-mode=blocking',
      '--allow-privileged=true',
      '--endpoint-reconciler-type=none',
      '--enable-priority-and-fairness=false',
      '--profiling=false',
    ],
    logFile: join(state.dir, 'logs', 'kube-apiserver.log'),
    match: pki(state, 'tokens.csv'),
  };
}

function componentSpec(
  state: BedState,
  name: 'kube-controller-manager' | 'kube-scheduler',
): ProcSpec {
  const kc = join(
    state.dir,
    name === 'kube-scheduler' ? BED_USERS.scheduler.kubeconfig : BED_USERS.kcm.kubeconfig,
  );
  const port = name === 'kube-scheduler' ? state.ports.scheduler : state.ports.controllerManager;
  const args = [
    `--kubeconfig=${kc}`,
    `--authentication-kubeconfig=${kc}`,
    `--authorization-kubeconfig=${kc}`,
    '--bind-address=127.0.0.1',
    `--secure-port=${port}`,
    '--leader-elect=false',
  ];
  if (name === 'kube-controller-manager') {
    args.push(
      `--service-account-private-key-file=${state.paths.saKey}`,
      `--root-ca-file=${pki(state, 'apiserver/apiserver.crt')}`,
      `--cluster-name=kubemend-bed-${state.scenario}`,
      '--controllers=*',
    );
  }
  return {
    name,
    command: join(state.binDir, name),
    args,
    logFile: join(state.dir, 'logs', `${name}.log`),
    match: kc,
  };
}

/** GET a URL (TLS not verified) with an optional bearer token; resolves with status and body. */
function get(url: string, token?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const mod = url.startsWith('https:') ? https : http;
    const headers: Record<string, string> = token ? { Authorization: `Bearer ${token}` } : {};
    const req = mod.get(url, { headers, rejectUnauthorized: false, timeout: 3000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/** The bed-admin bearer token (from the admin kubeconfig). */
function adminToken(state: BedState): string {
  const m = /token: (\S+)/.exec(readFileSync(state.paths.adminKubeconfig, 'utf8'));
  if (!m?.[1]) throw new Error(`${state.paths.adminKubeconfig}: no token`);
  return m[1];
}

/** Starts `spec`, records it, and waits until `ready` answers or the process dies. */
async function startAndWait(
  ctx: BedContext,
  spec: ProcSpec,
  ready: () => Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  mkdirSync(join(ctx.state.dir, 'logs'), { recursive: true });
  const rec = spawnDaemon(spec);
  ctx.state.processes[spec.name] = rec;
  ctx.save();
  const started = Date.now();
  await waitFor(`${spec.name} to become ready`, () => ready().catch(() => false), {
    timeoutMs,
    intervalMs: 200,
    abortIf: () =>
      isAlive(rec.pid) ? undefined : `${spec.name} exited; log tail:\n${tailFile(spec.logFile)}`,
  });
  ctx.log.info('Process ready', { process: spec.name, pid: rec.pid, ms: Date.now() - started });
}

async function startApiserver(ctx: BedContext): Promise<void> {
  const token = adminToken(ctx.state);
  const ready = async (): Promise<boolean> =>
    (await get(`${ctx.state.apiserverUrl}/readyz`, token)).status === 200;
  await startAndWait(ctx, apiserverSpec(ctx.state), ready, 90_000);
}

/** Starts etcd, kube-apiserver (waits for /readyz), kube-controller-manager and kube-scheduler. */
export async function startControlPlane(ctx: BedContext): Promise<void> {
  const { state } = ctx;
  const etcdHealthy = async (): Promise<boolean> =>
    (await get(`http://127.0.0.1:${state.ports.etcdClient}/health`)).body.includes(
      '"health":"true"',
    );
  await startAndWait(ctx, etcdSpec(state), etcdHealthy, 30_000);
  await startApiserver(ctx);
  const healthz = (port: number) => async (): Promise<boolean> =>
    (await get(`https://127.0.0.1:${port}/healthz`)).status === 200;
  await Promise.all([
    startAndWait(
      ctx,
      componentSpec(state, 'kube-controller-manager'),
      healthz(state.ports.controllerManager),
      60_000,
    ),
    startAndWait(
      ctx,
      componentSpec(state, 'kube-scheduler'),
      healthz(state.ports.scheduler),
      60_000,
    ),
  ]);
}

/**
 * Kills kube-apiserver and starts it again on the same port with the same flags; resolves when
 * /readyz answers. For fault tests: in-flight requests and watches break.
 */
export async function restartApiserver(ctx: BedContext): Promise<void> {
  const rec = ctx.state.processes['kube-apiserver'];
  // Short grace: a restart models a crash, and graceful shutdown waits for open watches.
  if (rec) await killDaemon(rec, 1000);
  ctx.log.info('Apiserver killed for restart', { pid: rec?.pid });
  await startApiserver(ctx);
}

/** One kube-apiserver audit event (level Metadata). */
export interface AuditEvent {
  auditID: string;
  stage: string;
  verb: string;
  requestURI: string;
  user: { username: string; groups?: string[] };
  userAgent?: string;
  objectRef?: {
    resource?: string;
    namespace?: string;
    name?: string;
    subresource?: string;
    apiGroup?: string;
  };
  responseStatus?: { code?: number };
  requestReceivedTimestamp: string;
  stageTimestamp: string;
}

/** Filter of {@link readAudit}. */
export interface AuditFilter {
  /** Only this user (e.g. `kubemend`). */
  user?: string;
  /** Only these verbs; `'mutating'` = create, update, patch, delete, deletecollection. */
  verbs?: string[] | 'mutating';
  /** Only events received at or after this time. */
  since?: Date;
  /** Stage to keep (default `ResponseComplete`, so each request counts once). */
  stage?: string;
}

/**
 * Parses the apiserver audit log. Events are written when a request completes, so poll briefly
 * after a call before asserting on its absence or presence.
 */
export function readAudit(
  bed: { paths: { auditLog: string } },
  filter: AuditFilter = {},
): AuditEvent[] {
  if (!existsSync(bed.paths.auditLog)) return [];
  const verbs = filter.verbs === 'mutating' ? MUTATING_VERBS : filter.verbs;
  const stage = filter.stage ?? 'ResponseComplete';
  const needle = filter.user ? `"username":${JSON.stringify(filter.user)}` : '';
  const out: AuditEvent[] = [];
  for (const line of readFileSync(bed.paths.auditLog, 'utf8').split('\n')) {
    if (!line || (needle && !line.includes(needle))) continue;
    const ev = JSON.parse(line) as AuditEvent;
    if (filter.user && ev.user.username !== filter.user) continue;
    if (ev.stage !== stage || (verbs && !verbs.includes(ev.verb))) continue;
    if (filter.since && new Date(ev.requestReceivedTimestamp) < filter.since) continue;
    out.push(ev);
  }
  return out;
}

/**
 * The kubemend test bed: a real, local, disposable cluster (etcd, kube-apiserver, controllers,
 * scheduler, simulated kubelets) with real sshd nodes, brought into a scenario's broken state.
 *
 * ```ts
 * const bed = await startBed({ scenario: 'seed' });
 * // hand bed.kubeconfigPath and bed.inventoryPath to kubemend ...
 * await bed.stop();
 * ```
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify as toYaml } from 'yaml';

import { readCniToken } from './cni-token.js';
import type { CniTokenClaims } from './cni-token.js';
import {
  readAudit as readAuditLog,
  restartApiserver as restartApi,
  startControlPlane,
  writeControlPlaneFiles,
} from './control-plane.js';
import type { AuditEvent, AuditFilter } from './control-plane.js';
import { KubeHttp, loadKubeTarget } from './kube-http.js';
import type { SimConfig } from './kubelet-sim.js';
import { createLogger } from './log.js';
import * as nodes from './nodes.js';
import type { BedNode, LedgerEntry } from './nodes.js';
import {
  applyObjects,
  disruptNamespaces,
  suspendNodes,
  waitAllReady,
  waitBroken,
  waitNodesReady,
} from './phases.js';
import { freePort, isAlive, killDaemon, killDaemonSync, spawnDaemon, tailFile } from './procs.js';
import type { ProcRecord } from './procs.js';
import { loadScenario } from './scenario.js';
import type { Scenario } from './scenario.js';
import { loadState, saveState, STATE_FILE } from './state.js';
import type { BedContext, BedPorts, BedState } from './state.js';
import { BED_SRC, REPO_ROOT, requireBinaries, resolveBinDir } from './tools.js';

export { MUTATING_VERBS } from './control-plane.js';
export type { AuditEvent, AuditFilter } from './control-plane.js';
export type { BedNode, LedgerEntry } from './nodes.js';
export type { BedState } from './state.js';
export {
  CALICO_ADD_UNAUTHORIZED,
  CALICO_DELETE_UNAUTHORIZED,
  sandboxFailedMessage,
  killFailedMessage,
} from './sim-objects.js';

/** Options of {@link startBed}. */
export interface StartBedOptions {
  /** A shipped scenario name (`seed`) or a path to a scenario file. */
  scenario: string;
  /**
   * Bed directory (created; must be empty or hold a stopped bed); kept by stop(). Default: a
   * new temp dir, removed by stop().
   */
  dir?: string;
  /**
   * Leave the processes running when the calling process exits (the CLI's `up`). Default false:
   * an exit hook kills them if {@link Bed.stop} was not called.
   */
  keepAlive?: boolean;
}

/** A node's SSH endpoint. */
export interface BedNodeEndpoint {
  name: string;
  address: string;
  port: number;
}

/** A running bed. */
export interface Bed {
  dir: string;
  scenario: string;
  apiserverUrl: string;
  /** kubeconfig of user `kubemend` (the engine under test). */
  kubeconfigPath: string;
  /** kubeconfig of user `bed-admin` (the harness). */
  adminKubeconfigPath: string;
  inventoryPath: string;
  sshKeyPath: string;
  knownHostsPath: string;
  nodes: BedNodeEndpoint[];
  /** The live bed.json content. */
  state: BedState;
  /**
   * Stops every process of the bed. `clean` removes the bed directory; it defaults to true for
   * a temp dir the bed created itself, unless `KUBEMEND_BED_KEEP=1` is set (to keep logs).
   */
  stop(opts?: { clean?: boolean }): Promise<void>;
  /** Kills a node's sshd (node unreachable over SSH; its kubelet keeps running). */
  stopNode(name: string): Promise<void>;
  /** Starts a node's sshd again on the same address and port. */
  startNode(name: string): Promise<void>;
  /** Kills kube-apiserver and starts it again on the same port with the same flags. */
  restartApiserver(): Promise<void>;
  /**
   * Breaks a recovered bed again the way its scenario did: waits until every pod is Ready,
   * suspends the nodes (clock offset, expired CNI token), disrupts the namespaces and waits
   * until the broken state is observable. Lets one bed serve several recovery runs.
   */
  rebreak(): Promise<void>;
  /** A node's ledger of mutating node commands. */
  readLedger(name: string): LedgerEntry[];
  /** Parsed audit events, e.g. `readAudit({ user: 'kubemend', verbs: 'mutating' })`. */
  readAudit(filter?: AuditFilter): AuditEvent[];
  /** Sets a node's clock offset in seconds (negative: behind). */
  setClockOffset(name: string, seconds: number): void;
  /** A node's clock offset in seconds, from its faketime.rc. */
  clockOffset(name: string): number;
  /** Makes a node's NTP source (un)reachable. */
  setNtpReachable(name: string, reachable: boolean): void;
  /** Makes a node's NTP source answer only after `seconds` (0: at once): a sync hangs. */
  setNtpDelay(name: string, seconds: number): void;
  /** Makes a unit restart on a node take `seconds` (0: at once): a restart is still running. */
  setUnitDelay(name: string, seconds: number): void;
  /** Forces a node unit's state (no ledger entry). */
  setUnitState(name: string, unit: string, state: 'active' | 'inactive' | 'failed'): void;
  /** Claims of the token in a node's CNI kubeconfig. */
  cniToken(name: string): CniTokenClaims | undefined;
}

const DEFAULT_SIM = { resyncMs: 2000, heartbeatMs: 10_000 };

function prepareDir(dir: string): void {
  if (existsSync(join(dir, STATE_FILE))) {
    const old = loadState(dir);
    const alive = Object.values(old.processes).filter((p) => isAlive(p.pid, p.match));
    if (alive.length > 0) {
      const names = alive.map((p) => p.name).join(', ');
      throw new Error(
        `a bed is running in ${dir} (${names}); run 'npm run bed -- down --dir ${dir}'`,
      );
    }
    rmSync(dir, { recursive: true, force: true });
  } else if (existsSync(dir) && readdirSync(dir).length > 0) {
    throw new Error(`refusing to use non-empty directory ${dir} that holds no bed`);
  }
  mkdirSync(dir, { recursive: true });
}

async function allocatePorts(): Promise<BedPorts> {
  const used = new Set<number>();
  const next = async (): Promise<number> => {
    for (;;) {
      const p = await freePort();
      if (!used.has(p)) return (used.add(p), p);
    }
  };
  return {
    etcdClient: await next(),
    etcdPeer: await next(),
    apiserver: await next(),
    controllerManager: await next(),
    scheduler: await next(),
  };
}

function newState(
  dir: string,
  tempDir: boolean,
  scenario: Scenario,
  ports: BedPorts,
  binDir: string,
): BedState {
  return {
    version: 1,
    scenario: scenario.name,
    scenarioFile: scenario.file,
    dir,
    phase: 'starting',
    createdAt: new Date().toISOString(),
    binDir,
    apiserverUrl: `https://127.0.0.1:${ports.apiserver}`,
    ports,
    paths: {
      kubeconfig: join(dir, 'kubeconfig'),
      adminKubeconfig: join(dir, 'admin.kubeconfig'),
      inventory: join(dir, 'inventory.yaml'),
      sshKey: join(dir, 'ssh', 'id_ed25519'),
      knownHosts: join(dir, 'ssh', 'known_hosts'),
      auditLog: join(dir, 'logs', 'audit.log'),
      bedLog: join(dir, 'bed.log'),
      simLog: join(dir, 'kubelet-sim.log'),
      saKey: join(dir, 'pki', 'sa.key'),
    },
    nodes: [],
    processes: {},
    tokenTtlSeconds: scenario.cniTokenTtlSeconds,
    tempDir,
    suspended: {},
    disrupted: {},
  };
}

function writeInventory(state: BedState): void {
  const inv = {
    apiVersion: 'kubemend.io/v1alpha1',
    kind: 'Inventory',
    cluster: state.scenario,
    ssh: { user: 'root', identityFile: state.paths.sshKey, knownHostsFile: state.paths.knownHosts },
    nodes: state.nodes.map((n) => ({ name: n.name, address: n.address, port: n.port })),
  };
  writeFileSync(state.paths.inventory, toYaml(inv, { collectionStyle: 'block' }));
}

async function createNodes(ctx: BedContext, scenario: Scenario): Promise<void> {
  const client = nodes.createSshClient(ctx.state.dir);
  const saKeyPem = readFileSync(ctx.state.paths.saKey, 'utf8');
  for (const [i, spec] of scenario.nodes.entries()) {
    const node = await nodes.createNode({
      name: spec.name,
      index: i + 1,
      timeSync: spec.timeSync,
      bedDir: ctx.state.dir,
      client,
      apiserverUrl: ctx.state.apiserverUrl,
      tokenTtlSeconds: scenario.cniTokenTtlSeconds,
      saKeyPem,
    });
    ctx.state.nodes.push(node);
  }
  nodes.writeKnownHosts(client, ctx.state.nodes);
  writeInventory(ctx.state);
  ctx.save();
  for (const n of ctx.state.nodes) await nodes.startNode(nodeHost(ctx), n.name);
  ctx.log.info('Nodes up', {
    nodes: ctx.state.nodes.map((n) => `${n.name}@${n.address}:${n.port}`),
  });
}

function nodeHost(ctx: BedContext): nodes.NodeHost {
  return {
    dir: ctx.state.dir,
    nodes: ctx.state.nodes,
    processes: ctx.state.processes,
    save: () => ctx.save(),
  };
}

function startSim(ctx: BedContext): void {
  const { state } = ctx;
  const cfg: SimConfig = {
    kubeconfig: state.paths.adminKubeconfig,
    apiserverUrl: state.apiserverUrl,
    saKeyPath: state.paths.saKey,
    tokenTtlSeconds: state.tokenTtlSeconds,
    certNotBefore: state.createdAt.replace(/\.\d+Z$/, 'Z'),
    nodes: state.nodes.map((n) => ({
      name: n.name,
      index: n.index,
      address: n.address,
      dir: n.dir,
    })),
    ...DEFAULT_SIM,
  };
  const cfgPath = join(state.dir, 'kubelet-sim.json');
  writeFileSync(cfgPath, JSON.stringify(cfg, null, 2) + '\n');
  const rec = spawnTsx('kubelet-sim', 'kubelet-sim.ts', ['--config', cfgPath], state.paths.simLog);
  state.processes[rec.name] = rec;
  ctx.save();
}

/** Starts one of the bed's own TypeScript programs as a detached Node process (via tsx). */
function spawnTsx(name: string, script: string, args: string[], logFile: string): ProcRecord {
  return spawnDaemon({
    name,
    command: process.execPath,
    args: ['--import', 'tsx', join(BED_SRC, script), ...args],
    cwd: REPO_ROOT,
    logFile,
    unsetEnv: ['NODE_OPTIONS'],
    match: `${script} ${args.join(' ')}`,
  });
}

/** Starts the watchdog that stops the bed if this process dies without stopping it. */
function startWatchdog(ctx: BedContext): void {
  const { state } = ctx;
  const args = ['--dir', state.dir, '--owner', String(process.pid)];
  const rec = spawnTsx('watchdog', 'watchdog.ts', args, join(state.dir, 'watchdog.log'));
  state.processes[rec.name] = rec;
  ctx.save();
}

/** Aborts waits when a bed process died, with the tail of its log. */
function deadProcess(state: BedState): string | undefined {
  const dead = Object.values(state.processes).find((p) => !isAlive(p.pid));
  return dead && `${dead.name} (pid ${dead.pid}) died; log tail:\n${tailFile(dead.logFile)}`;
}

async function runScenario(ctx: BedContext, scenario: Scenario): Promise<void> {
  const api = new KubeHttp(loadKubeTarget(ctx.state.paths.adminKubeconfig));
  const abortIf = (): string | undefined => deadProcess(ctx.state);
  try {
    await waitNodesReady(
      api,
      ctx.state.nodes.map((n) => n.name),
      30_000,
      abortIf,
    );
    await applyObjects(ctx, api, scenario.objects);
    await waitAllReady(ctx, api, scenario.readyTimeoutMs, abortIf);
    ctx.state.phase = 'ready';
    ctx.save();
    if (scenario.suspend) await breakCluster(ctx, api, scenario, abortIf);
  } finally {
    api.close();
  }
}

/** Suspends the nodes, disrupts the namespaces and waits until the broken state shows. */
async function breakCluster(
  ctx: BedContext,
  api: KubeHttp,
  scenario: Scenario,
  abortIf: () => string | undefined,
): Promise<void> {
  suspendNodes(ctx, scenario);
  await disruptNamespaces(ctx, api, scenario.restartNamespaces);
  await waitBroken(ctx, api, scenario, abortIf);
  ctx.state.phase = 'broken';
  ctx.save();
}

/** Stops all processes of a bed state (sim and controllers first, etcd last). */
async function stopProcesses(state: BedState): Promise<void> {
  const procs = state.processes;
  const first = Object.values(procs).filter((p) => !['kube-apiserver', 'etcd'].includes(p.name));
  await Promise.all(first.map((p) => killDaemon(p, 3000)));
  if (procs['kube-apiserver']) await killDaemon(procs['kube-apiserver'], 5000);
  if (procs.etcd) await killDaemon(procs.etcd, 5000);
}

function makeBed(ctx: BedContext, exitHook?: () => void): Bed {
  const { state } = ctx;
  const host = nodeHost(ctx);
  return {
    dir: state.dir,
    scenario: state.scenario,
    apiserverUrl: state.apiserverUrl,
    kubeconfigPath: state.paths.kubeconfig,
    adminKubeconfigPath: state.paths.adminKubeconfig,
    inventoryPath: state.paths.inventory,
    sshKeyPath: state.paths.sshKey,
    knownHostsPath: state.paths.knownHosts,
    nodes: state.nodes.map((n) => ({ name: n.name, address: n.address, port: n.port })),
    state,
    async stop(opts = {}) {
      const clean = opts.clean ?? (state.tempDir && !process.env.KUBEMEND_BED_KEEP);
      await stopProcesses(state);
      if (exitHook) process.removeListener('exit', exitHook);
      state.phase = 'stopped';
      ctx.log.info('Bed stopped', { clean });
      if (clean) rmSync(state.dir, { recursive: true, force: true });
      else ctx.save();
    },
    stopNode: (name) => nodes.stopNode(host, name),
    startNode: (name) => nodes.startNode(host, name),
    restartApiserver: () => restartApi(ctx),
    rebreak: () => rebreak(ctx),
    readLedger: (name) => nodes.readLedger(host, name),
    readAudit: (filter) => readAuditLog(state, filter),
    setClockOffset: (name, s) => nodes.setClockOffset(host, name, s),
    clockOffset: (name) => nodes.readClockOffset(findNode(state, name).dir),
    setNtpReachable: (name, r) => nodes.setNtpReachable(host, name, r),
    setNtpDelay: (name, s) => nodes.setDelay(host, name, 'ntp-delay', s),
    setUnitDelay: (name, s) => nodes.setDelay(host, name, 'unit-delay', s),
    setUnitState: (name, unit, st) => nodes.setUnitState(host, name, unit, st),
    cniToken: (name) => readCniToken(findNode(state, name).dir)?.claims,
  };
}

async function rebreak(ctx: BedContext): Promise<void> {
  const scenario = loadScenario(ctx.state.scenario);
  if (!scenario.suspend) throw new Error(`scenario ${scenario.name} has no suspend to repeat`);
  const api = new KubeHttp(loadKubeTarget(ctx.state.paths.adminKubeconfig));
  const abortIf = (): string | undefined => deadProcess(ctx.state);
  try {
    await waitAllReady(ctx, api, scenario.readyTimeoutMs, abortIf);
    // The last break's pods are gone (recovered); only this break's count.
    ctx.state.disrupted = {};
    ctx.state.suspended = {};
    await breakCluster(ctx, api, scenario, abortIf);
  } finally {
    api.close();
  }
}

function findNode(state: BedState, name: string): BedNode {
  const n = state.nodes.find((x) => x.name === name);
  if (!n) throw new Error(`no node '${name}' in bed ${state.dir}`);
  return n;
}

function contextFor(state: BedState): BedContext {
  const log = createLogger('bed', state.paths.bedLog);
  return { state, log, save: () => saveState(state) };
}

/**
 * Starts a bed for a scenario and returns once the scenario's broken state is observable (or,
 * for a scenario without a suspend, once every pod is Running/Ready). On failure every process
 * started so far is stopped and the error rethrown; the directory is kept for its logs.
 */
export async function startBed(opts: StartBedOptions): Promise<Bed> {
  const scenario = loadScenario(opts.scenario);
  const binDir = resolveBinDir();
  requireBinaries(binDir);
  const dir = resolve(opts.dir ?? mkdtempSync(join(tmpdir(), `kubemend-bed-${scenario.name}-`)));
  prepareDir(dir);
  const state = newState(dir, !opts.dir, scenario, await allocatePorts(), binDir);
  const ctx = contextFor(state);
  ctx.save();
  const exitHook = opts.keepAlive
    ? undefined
    : (): void => Object.values(state.processes).forEach(killDaemonSync);
  if (exitHook) process.on('exit', exitHook);
  const started = Date.now();
  try {
    if (!opts.keepAlive) startWatchdog(ctx);
    writeControlPlaneFiles(state);
    await createNodes(ctx, scenario);
    await startControlPlane(ctx);
    startSim(ctx);
    await runScenario(ctx, scenario);
  } catch (err) {
    ctx.log.error('Bed start failed', { err, ms: Date.now() - started });
    await stopProcesses(state);
    if (exitHook) process.removeListener('exit', exitHook);
    state.phase = 'failed';
    ctx.save();
    throw new Error(
      `bed ${scenario.name} failed to start (logs in ${dir}): ${(err as Error).message}`,
      { cause: err },
    );
  }
  ctx.log.info('Bed up', { scenario: scenario.name, phase: state.phase, ms: Date.now() - started });
  return makeBed(ctx, exitHook);
}

/** Attaches to a bed started elsewhere (e.g. by `npm run bed -- up`), from its bed.json. */
export function openBed(dir: string): Bed {
  return makeBed(contextFor(loadState(resolve(dir))));
}

/** Stops a bed (same as `bed.stop()`). */
export const stopBed = (bed: Bed, opts?: { clean?: boolean }): Promise<void> => bed.stop(opts);
/** Makes a node unreachable over SSH (kills its sshd and sessions). */
export const stopNode = (bed: Bed, name: string): Promise<void> => bed.stopNode(name);
/** Makes a node reachable over SSH again. */
export const startNode = (bed: Bed, name: string): Promise<void> => bed.startNode(name);
/** Restarts kube-apiserver on the same port and flags. */
export const restartApiserver = (bed: Bed): Promise<void> => bed.restartApiserver();
/** A node's ledger of mutating node commands. */
export const readLedger = (bed: Bed, name: string): LedgerEntry[] => bed.readLedger(name);
/** Parsed apiserver audit events matching `filter`. */
export const readAudit = (bed: Bed, filter?: AuditFilter): AuditEvent[] => bed.readAudit(filter);

/**
 * Simulated kubelets for all nodes of a bed, run as one detached process:
 * `node --import tsx test/bed/kubelet-sim.ts --config <bed>/kubelet-sim.json`.
 *
 * Registers and heartbeats the Node objects and drives pods bound to them. Every decision reads
 * the node's real files: a node whose kubelet unit is not active is left alone; a pod gets a
 * sandbox only while the Calico CNI token is valid (exp > real now); a terminating pod is torn
 * down only while CNI DEL works (token valid) or it uses the host network; calico-node writes a
 * fresh token on start only if the node's clock is within 5 s of real time.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

import { makeCniToken, readCniToken, writeCniKubeconfig } from './cni-token.js';
import { isStatus, KubeHttp, kubeMicroTime, kubeTime, loadKubeTarget } from './kube-http.js';
import type { KubeObject } from './kube-http.js';
import type { List, Pod } from './kube-types.js';
import { createLogger } from './log.js';
import { SYNC_TOLERANCE_S } from './node-tools.js';
import { readClockOffset, readUnitState } from './nodes.js';
import {
  crashLoopStatus,
  creatingStatus,
  killFailedMessage,
  nodeConditions,
  nodeObject,
  podEvent,
  REASON_BACKOFF,
  REASON_KILL_FAILED,
  REASON_SANDBOX_FAILED,
  runningStatus,
  sandboxFailedMessage,
  x509BackoffMessage,
} from './sim-objects.js';
import type { SimNode } from './sim-objects.js';

/** The simulator's configuration file, written by the bed. */
export interface SimConfig {
  /** bed-admin kubeconfig. */
  kubeconfig: string;
  apiserverUrl: string;
  saKeyPath: string;
  tokenTtlSeconds: number;
  /** notBefore the x509 error message quotes (control-plane start). */
  certNotBefore: string;
  nodes: SimNode[];
  resyncMs: number;
  heartbeatMs: number;
}

/** What a node's files say right now. */
interface NodeFacts {
  kubeletActive: boolean;
  runtimeActive: boolean;
  tokenValid: boolean;
  tokenExp?: number;
  clockOffsetS: number;
}

/** Per-pod bookkeeping. */
interface PodTrack {
  busy: boolean;
  nextAt: number;
  attempts: number;
  started: boolean;
  creatingSet: boolean;
  deleteIssued: boolean;
  ip?: string;
  events: Map<string, { name: string; count: number }>;
}

const log = createLogger('kubelet-sim');
const POD_SELECTOR = 'fieldSelector=spec.nodeName%21%3D';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Reads a node's facts from its directory. */
export function readNodeFacts(node: SimNode, nowMs = Date.now()): NodeFacts {
  const token = readCniToken(node.dir);
  return {
    kubeletActive: readUnitState(node.dir, 'kubelet') === 'active',
    runtimeActive: readUnitState(node.dir, 'containerd') === 'active',
    tokenValid: token !== undefined && token.claims.exp * 1000 > nowMs,
    tokenExp: token?.claims.exp,
    clockOffsetS: readClockOffset(node.dir),
  };
}

/** Backoff between failing sandbox attempts: 2 s, 4 s, 8 s, then every 10 s. */
const backoffMs = (attempts: number): number =>
  Math.min(2000 * 2 ** Math.max(0, attempts - 1), 10_000);

/** Bounded concurrency for API writes. */
class Limiter {
  private active = 0;
  private readonly queue: (() => void)[] = [];
  constructor(private readonly max: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) await new Promise<void>((r) => this.queue.push(r));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.queue.shift()?.();
    }
  }
}

/** The simulator for all nodes of one bed. */
export class KubeletSim {
  private readonly api: KubeHttp;
  private readonly nodes: Map<string, SimNode>;
  private readonly pods = new Map<string, Pod>();
  private readonly tracks = new Map<string, PodTrack>();
  private readonly limiter = new Limiter(8);
  private readonly readySince = new Map<string, { up: boolean; since: string }>();
  private readonly ipCounters = new Map<string, number>();
  private readonly warned = new Set<string>();
  private readonly abort = new AbortController();
  private stopped = false;

  constructor(private readonly cfg: SimConfig) {
    this.api = new KubeHttp(loadKubeTarget(cfg.kubeconfig));
    this.nodes = new Map(cfg.nodes.map((n) => [n.name, n]));
  }

  /** Runs until {@link stop}: heartbeats, the pod watch and the periodic resync. */
  async run(): Promise<void> {
    log.info('Simulator started', { nodes: [...this.nodes.keys()], pid: process.pid });
    await Promise.all([this.heartbeatLoop(), this.podLoop(), this.resyncLoop()]);
  }

  /** Stops all loops. */
  stop(): void {
    this.stopped = true;
    this.abort.abort();
    this.api.close();
  }

  /** Logs a failure once per key until the same key succeeds again. */
  private warnOnce(key: string, msg: string, attrs: Record<string, unknown>): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    log.warn(msg, attrs);
  }

  // ---- nodes ------------------------------------------------------------------------------

  private async heartbeatLoop(): Promise<void> {
    while (!this.stopped) {
      await Promise.all([...this.nodes.values()].map((n) => this.heartbeat(n)));
      await sleep(this.cfg.heartbeatMs);
    }
  }

  private async heartbeat(node: SimNode): Promise<void> {
    const facts = readNodeFacts(node);
    if (!facts.kubeletActive) return;
    try {
      await this.postNodeStatus(node, facts.runtimeActive);
      await this.renewLease(node);
      this.warned.delete(`hb/${node.name}`);
    } catch (err) {
      this.warnOnce(`hb/${node.name}`, 'Heartbeat failed', { node: node.name, err });
    }
  }

  private async postNodeStatus(node: SimNode, runtimeUp: boolean): Promise<void> {
    const prev = this.readySince.get(node.name);
    if (!prev || prev.up !== runtimeUp)
      this.readySince.set(node.name, { up: runtimeUp, since: kubeTime() });
    const since = this.readySince.get(node.name)?.since ?? kubeTime();
    const body = { status: { conditions: nodeConditions(runtimeUp, since) } };
    try {
      await this.api.mergePatch(`/api/v1/nodes/${node.name}/status`, body);
    } catch (err) {
      if (!isStatus(err, 404)) throw err;
      await this.api.request('POST', '/api/v1/nodes', { body: nodeObject(node) });
      log.info('Node registered', { node: node.name });
    }
  }

  private async renewLease(node: SimNode): Promise<void> {
    const path = `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${node.name}`;
    const spec = {
      holderIdentity: node.name,
      leaseDurationSeconds: 40,
      renewTime: kubeMicroTime(),
    };
    try {
      await this.api.mergePatch(path, { spec });
    } catch (err) {
      if (!isStatus(err, 404)) throw err;
      const body = {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: node.name },
        spec,
      };
      await this.api.request(
        'POST',
        '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases',
        { body },
      );
    }
  }

  // ---- pod cache --------------------------------------------------------------------------

  private async podLoop(): Promise<void> {
    while (!this.stopped) {
      try {
        const list = await this.api.request<List<Pod>>('GET', `/api/v1/pods?${POD_SELECTOR}`, {
          timeoutMs: 30_000,
        });
        this.replaceCache(list.items);
        this.warned.delete('watch');
        const rv = list.metadata.resourceVersion;
        const q = `${POD_SELECTOR}&watch=true&allowWatchBookmarks=true&timeoutSeconds=240`;
        await this.api.watch(
          `/api/v1/pods?${q}&resourceVersion=${rv}`,
          (type, obj) => this.onPodEvent(type, obj as unknown as Pod),
          this.abort.signal,
        );
      } catch (err) {
        if (this.stopped) return;
        this.warnOnce('watch', 'Pod list/watch failed; retrying', { err });
        await sleep(1000);
      }
    }
  }

  private replaceCache(items: Pod[]): void {
    const seen = new Set<string>();
    for (const pod of items) {
      if (!this.nodes.has(nodeOf(pod))) continue;
      this.pods.set(pod.metadata.uid, pod);
      seen.add(pod.metadata.uid);
    }
    for (const uid of [...this.pods.keys()]) {
      if (!seen.has(uid)) this.forget(uid);
    }
  }

  private forget(uid: string): void {
    this.pods.delete(uid);
    this.tracks.delete(uid);
  }

  private onPodEvent(type: string, pod: Pod): void {
    if (type === 'BOOKMARK' || type === 'ERROR') return;
    const uid = pod.metadata.uid;
    if (type === 'DELETED' || !this.nodes.has(nodeOf(pod))) {
      this.forget(uid);
      return;
    }
    this.pods.set(uid, pod);
    this.kick(pod, readNodeFacts(this.node(pod)));
  }

  private async resyncLoop(): Promise<void> {
    while (!this.stopped) {
      const facts = new Map([...this.nodes.values()].map((n) => [n.name, readNodeFacts(n)]));
      for (const pod of this.pods.values()) this.kick(pod, facts.get(nodeOf(pod)) as NodeFacts);
      await sleep(this.cfg.resyncMs);
    }
  }

  // ---- pod reconcile ----------------------------------------------------------------------

  private track(uid: string): PodTrack {
    let t = this.tracks.get(uid);
    if (!t) {
      t = {
        busy: false,
        nextAt: 0,
        attempts: 0,
        started: false,
        creatingSet: false,
        deleteIssued: false,
        events: new Map(),
      };
      this.tracks.set(uid, t);
    }
    return t;
  }

  /** Reconciles one pod unless it is busy or backing off; never throws. */
  private kick(pod: Pod, facts: NodeFacts): void {
    const t = this.track(pod.metadata.uid);
    if (t.busy || Date.now() < t.nextAt || !facts.kubeletActive) return;
    t.busy = true;
    this.reconcile(pod, t, facts)
      .catch((err: unknown) => {
        t.nextAt = Date.now() + 1000;
        if (!isStatus(err, 404, 409))
          this.warnOnce(`pod/${pod.metadata.uid}`, 'Pod action failed', { pod: podKey(pod), err });
      })
      .finally(() => (t.busy = false));
  }

  private async reconcile(pod: Pod, t: PodTrack, facts: NodeFacts): Promise<void> {
    if (pod.metadata.deletionTimestamp) return this.teardown(pod, t, facts);
    if (!facts.runtimeActive || t.started || isUp(pod) || isFinished(pod)) return;
    if (pod.metadata.labels?.['k8s-app'] === 'calico-node') return this.startCalico(pod, t, facts);
    if (pod.spec.hostNetwork || facts.tokenValid) return this.startPod(pod, t, facts);
    return this.failSandbox(pod, t, facts);
  }

  private node(pod: Pod): SimNode {
    return this.nodes.get(nodeOf(pod)) as SimNode;
  }

  private async teardown(pod: Pod, t: PodTrack, facts: NodeFacts): Promise<void> {
    if (t.deleteIssued || !facts.runtimeActive) return;
    if (pod.spec.hostNetwork || facts.tokenValid) {
      const body = {
        apiVersion: 'v1',
        kind: 'DeleteOptions',
        gracePeriodSeconds: 0,
        preconditions: { uid: pod.metadata.uid },
      };
      await this.limiter.run(() =>
        this.api.request('DELETE', `/api/v1/namespaces/${podKey(pod).replace('/', '/pods/')}`, {
          body,
        }),
      );
      t.deleteIssued = true; // with finalizers the object stays; we don't fight them
      log.info('Pod torn down', { pod: podKey(pod), node: nodeOf(pod), uid: pod.metadata.uid });
      return;
    }
    await this.recordEvent(pod, t, REASON_KILL_FAILED, killFailedMessage(pod.metadata.uid));
    this.backoff(t, 'CNI DEL unauthorized; pod stays Terminating', pod, facts);
  }

  private async startPod(pod: Pod, t: PodTrack, facts: NodeFacts): Promise<void> {
    const node = this.node(pod);
    const ip = pod.spec.hostNetwork ? node.address : (t.ip ??= this.allocateIp(node));
    const restarts = pod.status?.containerStatuses?.[0]?.restartCount ?? 0;
    await this.patchStatus(pod, runningStatus(pod, node.address, ip, restarts));
    t.started = true;
    log.info('Pod started', {
      pod: podKey(pod),
      node: node.name,
      podIP: ip,
      attempts: t.attempts,
      tokenExp: facts.tokenExp,
    });
  }

  private async failSandbox(pod: Pod, t: PodTrack, facts: NodeFacts): Promise<void> {
    if (!t.creatingSet) {
      await this.patchStatus(pod, creatingStatus(pod, this.node(pod).address));
      t.creatingSet = true;
    }
    await this.recordEvent(pod, t, REASON_SANDBOX_FAILED, sandboxFailedMessage(pod.metadata.uid));
    this.backoff(t, 'CNI ADD unauthorized; pod stays ContainerCreating', pod, facts);
  }

  private async startCalico(pod: Pod, t: PodTrack, facts: NodeFacts): Promise<void> {
    const node = this.node(pod);
    if (Math.abs(facts.clockOffsetS) <= SYNC_TOLERANCE_S) {
      const now = Math.floor(Date.now() / 1000);
      const key = readFileSync(this.cfg.saKeyPath, 'utf8');
      writeCniKubeconfig(
        node.dir,
        this.cfg.apiserverUrl,
        makeCniToken(now, now + this.cfg.tokenTtlSeconds, key),
      );
      log.info('CNI token written', {
        node: node.name,
        pod: podKey(pod),
        iat: now,
        exp: now + this.cfg.tokenTtlSeconds,
      });
      return this.startPod(pod, t, readNodeFacts(node));
    }
    const message = x509BackoffMessage(
      pod,
      Date.now() + facts.clockOffsetS * 1000,
      this.cfg.certNotBefore,
    );
    await this.patchStatus(pod, crashLoopStatus(pod, node.address, t.attempts + 1, message));
    await this.recordEvent(pod, t, REASON_BACKOFF, message);
    this.backoff(t, 'calico-node crashes: clock skewed', pod, facts);
  }

  private backoff(t: PodTrack, msg: string, pod: Pod, facts: NodeFacts): void {
    t.attempts++;
    t.nextAt = Date.now() + backoffMs(t.attempts);
    if (t.attempts === 1) {
      log.info(msg, {
        pod: podKey(pod),
        node: nodeOf(pod),
        tokenExp: facts.tokenExp,
        clockOffsetS: facts.clockOffsetS,
      });
    }
  }

  private async patchStatus(pod: Pod, status: KubeObject): Promise<void> {
    const path = `/api/v1/namespaces/${podKey(pod).replace('/', '/pods/')}/status`;
    await this.limiter.run(() =>
      this.api.mergePatch(path, { metadata: { uid: pod.metadata.uid }, status }),
    );
  }

  /** Creates the pod's event for `reason`, or bumps its count and lastTimestamp. */
  private async recordEvent(pod: Pod, t: PodTrack, reason: string, message: string): Promise<void> {
    const ns = pod.metadata.namespace ?? 'default';
    const prev = t.events.get(reason);
    if (prev) {
      try {
        const body = { count: prev.count + 1, lastTimestamp: kubeTime(), message };
        await this.limiter.run(() =>
          this.api.mergePatch(`/api/v1/namespaces/${ns}/events/${prev.name}`, body),
        );
        prev.count++;
        return;
      } catch (err) {
        if (!isStatus(err, 404)) throw err;
      }
    }
    const name = `${pod.metadata.name}.${randomBytes(8).toString('hex')}`;
    const body = podEvent(pod, nodeOf(pod), reason, message, name);
    await this.limiter.run(() =>
      this.api.request('POST', `/api/v1/namespaces/${ns}/events`, { body }),
    );
    t.events.set(reason, { name, count: 1 });
  }

  /** Next free pod IP in the node's 10.244.<index>.0/24 (spilling into 10.245+ if full). */
  private allocateIp(node: SimNode): string {
    const used = new Set<string>();
    for (const p of this.pods.values())
      if (nodeOf(p) === node.name && p.status?.podIP) used.add(p.status.podIP);
    for (const t of this.tracks.values()) if (t.ip) used.add(t.ip);
    let k = this.ipCounters.get(node.name) ?? 0;
    for (let tries = 0; tries < 1016; tries++, k++) {
      const ip = `10.${244 + Math.floor((k % 1016) / 254)}.${node.index}.${(k % 254) + 1}`;
      if (!used.has(ip)) {
        this.ipCounters.set(node.name, k + 1);
        return ip;
      }
    }
    return `10.244.${node.index}.254`;
  }
}

const podKey = (pod: Pod): string => `${pod.metadata.namespace ?? ''}/${pod.metadata.name}`;
const nodeOf = (pod: Pod): string => pod.spec.nodeName ?? '';

/** Running with every container ready. */
function isUp(pod: Pod): boolean {
  const cs = pod.status?.containerStatuses ?? [];
  return pod.status?.phase === 'Running' && cs.length > 0 && cs.every((c) => c.ready === true);
}

const isFinished = (pod: Pod): boolean => ['Succeeded', 'Failed'].includes(pod.status?.phase ?? '');

function main(): void {
  const i = process.argv.indexOf('--config');
  const file = i > 0 ? process.argv[i + 1] : undefined;
  if (!file) throw new Error('usage: kubelet-sim.ts --config <kubelet-sim.json>');
  const sim = new KubeletSim(JSON.parse(readFileSync(file, 'utf8')) as SimConfig);
  const stop = (): void => {
    log.info('Simulator stopping', {});
    sim.stop();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  sim.run().catch((err: unknown) => {
    log.error('Simulator crashed', { err });
    process.exit(1);
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();

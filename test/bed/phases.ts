/**
 * The scenario phases, run by the harness as `bed-admin`: apply objects, wait until every pod
 * is Running/Ready, suspend (skew clocks, expire CNI tokens), disrupt (restart the pods of the
 * resume namespaces), and wait until the broken state is observable.
 */
import { readFileSync } from 'node:fs';

import { makeCniToken, writeCniKubeconfig } from './cni-token.js';
import { isStatus } from './kube-http.js';
import type { KubeHttp, KubeObject } from './kube-http.js';
import type { CoreEvent, List, NodeObj, Pod, Workload } from './kube-types.js';
import { setClockOffset } from './nodes.js';
import { waitFor } from './procs.js';
import type { Manifest, Scenario } from './scenario.js';
import { REASON_KILL_FAILED, REASON_SANDBOX_FAILED } from './sim-objects.js';
import type { BedContext } from './state.js';

/** Maps apiVersion/kind to REST paths via discovery, cached per group-version. */
class ResourceMapper {
  private readonly cache = new Map<string, KubeObject[]>();
  constructor(private readonly api: KubeHttp) {}

  async collectionPath(m: Manifest): Promise<string> {
    const base = m.apiVersion === 'v1' ? '/api/v1' : `/apis/${m.apiVersion}`;
    let resources = this.cache.get(base);
    if (!resources) {
      resources = (await this.api.request('GET', base)).resources as KubeObject[];
      this.cache.set(base, resources);
    }
    const r = resources.find((x) => x.kind === m.kind && !String(x.name).includes('/'));
    if (!r) throw new Error(`unknown kind ${m.apiVersion}/${m.kind} in scenario objects`);
    if (!r.namespaced) return `${base}/${r.name}`;
    return `${base}/namespaces/${m.metadata.namespace ?? 'default'}/${r.name}`;
  }
}

/** Creates the scenario's objects (Namespaces first); existing objects are left as they are. */
export async function applyObjects(
  ctx: BedContext,
  api: KubeHttp,
  objects: Manifest[],
): Promise<void> {
  const mapper = new ResourceMapper(api);
  const ordered = [
    ...objects.filter((o) => o.kind === 'Namespace'),
    ...objects.filter((o) => o.kind !== 'Namespace'),
  ];
  for (const obj of ordered) {
    try {
      await api.request('POST', await mapper.collectionPath(obj), { body: obj });
    } catch (err) {
      if (!isStatus(err, 409)) throw err;
    }
  }
  ctx.log.info('Objects applied', { count: ordered.length });
}

const isTerminating = (p: Pod): boolean => !!p.metadata.deletionTimestamp;

function isReady(p: Pod): boolean {
  const ready = (p.status?.conditions ?? []).find((c) => c.type === 'Ready');
  return p.status?.phase === 'Running' && ready?.status === 'True';
}

/** Waits until every listed node exists and is Ready. */
export async function waitNodesReady(
  api: KubeHttp,
  names: string[],
  timeoutMs: number,
  abortIf?: () => string | undefined,
): Promise<void> {
  await waitFor(
    `nodes ${names.join(', ')} to be Ready`,
    async () => {
      const nodes = (await api.request<List<NodeObj>>('GET', '/api/v1/nodes')).items;
      const ready = new Set(
        nodes
          .filter((n) =>
            n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
          )
          .map((n) => n.metadata.name),
      );
      return names.every((n) => ready.has(n));
    },
    { timeoutMs, intervalMs: 300, abortIf },
  );
}

const name = (o: { metadata: { namespace?: string; name: string } }): string =>
  `${o.metadata.namespace ?? ''}/${o.metadata.name}`;

/** What is not ready yet, or an empty list when every workload and pod is. */
async function notReady(api: KubeHttp): Promise<string[]> {
  const [deps, dss, pods] = await Promise.all([
    api.request<List<Workload>>('GET', '/apis/apps/v1/deployments'),
    api.request<List<Workload>>('GET', '/apis/apps/v1/daemonsets'),
    api.request<List<Pod>>('GET', '/api/v1/pods'),
  ]);
  const out: string[] = [];
  for (const d of deps.items) {
    const want = d.spec.replicas ?? 1;
    if ((d.status?.availableReplicas ?? 0) !== want || (d.status?.updatedReplicas ?? 0) !== want)
      out.push(`deployment ${name(d)}`);
  }
  for (const d of dss.items) {
    const want = d.status?.desiredNumberScheduled ?? 0;
    if (want === 0 || d.status?.numberReady !== want) out.push(`daemonset ${name(d)}`);
  }
  for (const p of pods.items) {
    if (!isTerminating(p) && !isReady(p)) out.push(`pod ${name(p)}`);
  }
  return out;
}

/** Waits until every Deployment and DaemonSet is fully available and every pod Running/Ready. */
export async function waitAllReady(
  ctx: BedContext,
  api: KubeHttp,
  timeoutMs: number,
  abortIf?: () => string | undefined,
): Promise<void> {
  let last: string[] = [];
  try {
    await waitFor(
      'every workload to be Running/Ready',
      async () => {
        last = await notReady(api);
        return last.length === 0;
      },
      { timeoutMs, intervalMs: 500, abortIf },
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; not ready: ${last.slice(0, 10).join(', ')}`, {
      cause: err,
    });
  }
  ctx.log.info('All workloads ready', {});
}

/**
 * Applies the suspend: each suspended node's clock goes `duration` behind, and its CNI token is
 * re-issued as it was before the suspend (issued `tokenIssuedBefore` earlier, expired since).
 */
export function suspendNodes(ctx: BedContext, scenario: Scenario): void {
  const s = scenario.suspend;
  if (!s) return;
  const key = readFileSync(ctx.state.paths.saKey, 'utf8');
  const now = Math.floor(Date.now() / 1000);
  const iat = now - s.durationSeconds - s.tokenIssuedBeforeSeconds;
  const exp = iat + scenario.cniTokenTtlSeconds;
  for (const name of s.nodes) {
    const node = ctx.state.nodes.find((n) => n.name === name);
    if (!node) throw new Error(`suspend: unknown node ${name}`);
    setClockOffset(ctx.state, name, -s.durationSeconds);
    writeCniKubeconfig(node.dir, ctx.state.apiserverUrl, makeCniToken(iat, exp, key));
    ctx.state.suspended[name] = -s.durationSeconds;
  }
  ctx.save();
  ctx.log.info('Nodes suspended', {
    nodes: s.nodes,
    clockOffsetS: -s.durationSeconds,
    tokenIat: iat,
    tokenExp: exp,
  });
}

/** Deletes (gracefully) every pod of the resume namespaces; records them as disrupted. */
export async function disruptNamespaces(
  ctx: BedContext,
  api: KubeHttp,
  namespaces: string[],
): Promise<void> {
  for (const ns of namespaces) {
    const pods = (await api.request<List<Pod>>('GET', `/api/v1/namespaces/${ns}/pods`)).items;
    for (const p of pods.filter((x) => !isTerminating(x))) {
      await api.request('DELETE', `/api/v1/namespaces/${ns}/pods/${p.metadata.name}`);
      ctx.state.disrupted[`${ns}/${p.metadata.name}`] = p.metadata.uid;
    }
  }
  ctx.save();
  ctx.log.info('Resume disruption applied', {
    namespaces,
    pods: Object.keys(ctx.state.disrupted).length,
  });
}

async function eventUids(api: KubeHttp, ns: string, reason: string): Promise<Set<string>> {
  const path = `/api/v1/namespaces/${ns}/events?fieldSelector=reason%3D${reason}`;
  const evs = (await api.request<List<CoreEvent>>('GET', path)).items;
  return new Set(evs.map((e) => e.involvedObject.uid));
}

/** Why namespace `ns` is not (yet) in the broken state; undefined once it is. */
async function brokenGap(ctx: BedContext, api: KubeHttp, ns: string): Promise<string | undefined> {
  const broken = new Set(Object.keys(ctx.state.suspended));
  const [pods, deps, addFailed, delFailed] = await Promise.all([
    api.request<List<Pod>>('GET', `/api/v1/namespaces/${ns}/pods`).then((l) => l.items),
    api
      .request<List<Workload>>('GET', `/apis/apps/v1/namespaces/${ns}/deployments`)
      .then((l) => l.items),
    eventUids(api, ns, REASON_SANDBOX_FAILED),
    eventUids(api, ns, REASON_KILL_FAILED),
  ]);
  for (const [key, uid] of Object.entries(ctx.state.disrupted).filter(([k]) =>
    k.startsWith(`${ns}/`),
  )) {
    const pod = pods.find((p) => p.metadata.uid === uid);
    if (pod && broken.has(pod.spec.nodeName ?? '') && !delFailed.has(uid))
      return `${key} has no FailedKillPod event yet`;
    if (!pod && broken.size === ctx.state.nodes.length) return `${key} vanished`;
  }
  const live = pods.filter((p) => !isTerminating(p));
  const want = deps.reduce((n, d) => n + (d.spec.replicas ?? 1), 0);
  if (live.length < want) return `${live.length}/${want} replacement pods`;
  for (const p of live) {
    if (!p.spec.nodeName) return `${p.metadata.name} not scheduled`;
    if (broken.has(p.spec.nodeName) && !addFailed.has(p.metadata.uid))
      return `${p.metadata.name} has no FailedCreatePodSandBox event yet`;
  }
  return undefined;
}

/**
 * Waits until the resume namespaces show the incident: disrupted pods Terminating (with
 * FailedKillPod), replacements ContainerCreating with FailedCreatePodSandBox events.
 */
export async function waitBroken(
  ctx: BedContext,
  api: KubeHttp,
  scenario: Scenario,
  abortIf?: () => string | undefined,
): Promise<void> {
  let gap: string | undefined;
  try {
    await waitFor(
      'the broken state',
      async () => {
        for (const ns of scenario.restartNamespaces) {
          gap = await brokenGap(ctx, api, ns);
          if (gap) return false;
        }
        return true;
      },
      { timeoutMs: scenario.brokenTimeoutMs, intervalMs: 500, abortIf },
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; last gap: ${gap ?? 'none'}`, { cause: err });
  }
  ctx.log.info('Broken state observable', { namespaces: scenario.restartNamespaces });
}

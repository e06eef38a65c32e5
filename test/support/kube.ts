/**
 * Read helpers for integration tests: the cluster as the bed's admin sees it.
 */
import { AppsV1Api, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import type { V1Pod } from '@kubernetes/client-node';

export function adminCore(kubeconfigPath: string): CoreV1Api {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  return kc.makeApiClient(CoreV1Api);
}

export function adminApps(kubeconfigPath: string): AppsV1Api {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  return kc.makeApiClient(AppsV1Api);
}

/** Polls `probe` every 250 ms until it returns true; fails after `timeoutMs` naming `what`. */
export async function eventually(
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

export async function podsIn(core: CoreV1Api, namespaces: string[]): Promise<V1Pod[]> {
  const lists = await Promise.all(
    namespaces.map((namespace) => core.listNamespacedPod({ namespace })),
  );
  return lists.flatMap((l) => l.items);
}

export const key = (p: V1Pod): string => `${p.metadata?.namespace}/${p.metadata?.name}`;

export function isReady(p: V1Pod): boolean {
  return (
    !p.metadata?.deletionTimestamp &&
    p.status?.phase === 'Running' &&
    !!p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')
  );
}

/** Pods the seed runbook must clear: Terminating, or Pending in ContainerCreating. */
export function isStuck(p: V1Pod): boolean {
  if (p.metadata?.deletionTimestamp) return true;
  return (
    p.status?.phase === 'Pending' &&
    !!p.status.containerStatuses?.some((c) => c.state?.waiting?.reason === 'ContainerCreating')
  );
}

/**
 * Waits until every Terminating pod in the namespaces is past its deletion time (the end of its
 * grace period) by `marginMs`: only then does kubemend's definition call it stuck rather than
 * still terminating normally.
 */
export async function waitPastGrace(
  core: CoreV1Api,
  namespaces: string[],
  marginMs = 2000,
): Promise<void> {
  const pods = await podsIn(core, namespaces);
  const last = Math.max(
    0,
    ...pods.map((p) =>
      p.metadata?.deletionTimestamp ? new Date(p.metadata.deletionTimestamp).getTime() : 0,
    ),
  );
  const wait = last + marginMs - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}

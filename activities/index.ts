/**
 * The activities a kubemend worker registers, bound to the clusters it serves. Credentials are
 * resolved here, in the worker, from the cluster name a workflow passes.
 */
import { readFile } from 'node:fs/promises';
import { Context } from '@temporalio/activity';
import { CancelledFailure } from '@temporalio/common';
import { join } from 'node:path';
import { loadRunbook } from '../common/load-runbook.js';
import type { Runbook } from '../common/runbook.js';
import { ConfigError, UnknownClusterError } from '../common/errors.js';
import type { StepResult } from '../common/types.js';
import type { ClusterConfig } from '../workers/config.js';
import * as k8s from './kubernetes.js';
import * as node from './node.js';
import { NodeShell } from './ssh.js';
import type {
  DaemonSetTarget,
  FindStuckPodsInput,
  ForceDeletePodsInput,
  MeasureClockInput,
  RestartUnitInput,
  RolloutRestartInput,
  SyncClockInput,
  WaitInput,
  WaitPodsReadyInput,
} from './types.js';

export interface ActivityDeps {
  clusters: ReadonlyMap<string, ClusterConfig>;
  /** Folder of runbook files, for runs started by name (Temporal UI, schedules, webhook). */
  runbookDir: string;
}

const HEARTBEAT_EVERY_MS = 2_000;

/**
 * Heartbeats while `fn` runs, so a worker that dies mid-step is noticed within the heartbeat
 * timeout (not the whole step timeout), and so the activity learns of cancellation.
 */
function heartbeating<I, R>(fn: (input: I) => Promise<R>): (input: I) => Promise<R> {
  return async (input) => {
    const ctx = Context.current();
    const timer = setInterval(() => ctx.heartbeat(), HEARTBEAT_EVERY_MS);
    try {
      return await fn(input);
    } catch (err) {
      // A remote command killed because the run was cancelled must reach Temporal as a
      // cancellation; as a plain failure the workflow would count the node failed and go on.
      if (ctx.cancellationSignal.aborted && !(err instanceof CancelledFailure)) {
        throw new CancelledFailure(`cancelled: ${(err as Error).message}`);
      }
      throw err;
    } finally {
      clearInterval(timer);
    }
  };
}

/** Builds the activity functions; the workflow sees them through {@link KubemendActivities}. */
// eslint-disable-next-line @typescript-eslint/explicit-module-boundary-types
export function createActivities(deps: ActivityDeps) {
  const kubeClients = new Map<string, k8s.KubeClients>();

  const cluster = (name: string): ClusterConfig => {
    const c = deps.clusters.get(name);
    if (!c) {
      const known = [...deps.clusters.keys()].join(', ') || 'none';
      throw new UnknownClusterError(
        `this worker does not serve cluster "${name}" (it serves: ${known})`,
      );
    }
    return c;
  };
  const kube = (name: string): k8s.KubeClients => {
    let k = kubeClients.get(name);
    if (!k) {
      k = new k8s.KubeClients(cluster(name).kubeconfigPath);
      kubeClients.set(name, k);
    }
    return k;
  };
  const shell = (clusterName: string, nodeName: string): NodeShell => {
    const inv = cluster(clusterName).inventory;
    const n = inv.nodes.find((x) => x.name === nodeName);
    if (!n) throw new ConfigError(`node ${nodeName} is not in cluster ${clusterName}'s inventory`);
    return new NodeShell(inv, n);
  };

  return {
    /** Node names of a cluster, from the worker's inventory. */
    listNodes(input: { cluster: string }): Promise<string[]> {
      return Promise.resolve(cluster(input.cluster).inventory.nodes.map((n) => n.name));
    },
    /** Reads `runbooks/<name>.yaml` and validates it with the given parameters. */
    async loadRunbook(input: { name: string; params: Record<string, unknown> }): Promise<Runbook> {
      if (!/^[a-z0-9][-a-z0-9]*$/.test(input.name))
        throw new ConfigError(`not a runbook name: ${input.name}`);
      const file = join(deps.runbookDir, `${input.name}.yaml`);
      const text = await readFile(file, 'utf8').catch(() => {
        throw new ConfigError(`no runbook named ${input.name} (looked for ${file})`);
      });
      try {
        return loadRunbook(text, file, input.params);
      } catch (err) {
        throw new ConfigError((err as Error).message);
      }
    },
    measureClock: heartbeating((i: MeasureClockInput) =>
      node.measureClock(shell(i.cluster, i.node), i.maxSkewMs),
    ),
    syncClock: heartbeating((i: SyncClockInput) => node.syncClock(shell(i.cluster, i.node), i)),
    restartUnit: heartbeating((i: RestartUnitInput) =>
      node.restartUnit(shell(i.cluster, i.node), i),
    ),
    findStuckPods: heartbeating((i: FindStuckPodsInput) => k8s.findStuckPods(kube(i.cluster), i)),
    rolloutRestartDaemonSet: heartbeating((i: RolloutRestartInput) =>
      k8s.rolloutRestartDaemonSet(kube(i.cluster), i),
    ),
    // These heartbeat their own progress (batches done, rollout state) as details.
    forceDeletePods: (i: ForceDeletePodsInput): Promise<StepResult> =>
      k8s.forceDeletePods(kube(i.cluster), i),
    waitDaemonSetRollout: (i: DaemonSetTarget & WaitInput): Promise<StepResult> =>
      k8s.waitDaemonSetRollout(kube(i.cluster), i),
    waitPodsReady: (i: WaitPodsReadyInput): Promise<StepResult> =>
      k8s.waitPodsReady(kube(i.cluster), i),
  };
}

export type KubemendActivities = ReturnType<typeof createActivities>;

/**
 * Commands on existing runs: resume, retry, approve, reject, cancel.
 */
import { userInfo } from 'node:os';
import { defaultPayloadConverter } from '@temporalio/common';
import type { Client } from '@temporalio/client';
import type { RunInput } from '../common/types.js';
import { taskQueueFor } from '../common/types.js';
import { loadCluster } from '../workers/config.js';
import { approveUpdate, progressQuery, rejectUpdate, runRunbook } from '../workflows/index.js';
import { stopDevServer } from './dev-server.js';
import { formatReport, progressLines } from './report.js';
import { finish, follow, temporalTarget, UsageError, withWorker } from './run.js';
import type { TemporalTarget } from './run.js';

export interface ClusterOpts {
  kubeconfig: string;
  inventory: string;
  report?: string;
  verbose?: boolean;
  localWorker?: boolean;
}

/**
 * Runs `fn` against the Temporal server. An embedded server is stopped afterwards if this
 * command started it, or if `own` (commands that follow a run to its end: resume, retry).
 */
async function withTarget<T>(fn: (target: TemporalTarget) => Promise<T>, own = false): Promise<T> {
  const target = await temporalTarget();
  try {
    return await fn(target);
  } finally {
    if (target.embedded)
      await stopDevServer({ ...target.embedded, started: target.embedded.started || own });
  }
}

/** The run's state without needing a worker; exits early with a message if it is closed. */
async function openRun(client: Client, workflowId: string): Promise<boolean> {
  const { status } = await client.workflow.getHandle(workflowId).describe();
  if (status.name === 'RUNNING') return true;
  console.error(`kubemend: run ${workflowId} is ${status.name.toLowerCase()}; nothing to do`);
  return false;
}

/** `kubemend resume <run>`: a worker for the run's cluster, then follow it to the end. */
export function resumeCommand(workflowId: string, opts: ClusterOpts): Promise<number> {
  const cluster = loadCluster(opts.kubeconfig, opts.inventory);
  return withTarget(async (target) => {
    const report = await withWorker(target, cluster, opts, (client) => {
      console.log(`kubemend: resuming ${workflowId}`);
      return follow(client.workflow.getHandle<typeof runRunbook>(workflowId));
    });
    return finish(report, opts.report);
  }, true);
}

/** The input the run was started with, read back from its history. */
async function originalInput(client: Client, workflowId: string): Promise<RunInput> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const payload =
    history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
  if (!payload) throw new UsageError(`cannot read the input of ${workflowId}`);
  return defaultPayloadConverter.fromPayload<RunInput>(payload);
}

/**
 * `kubemend retry <run>`: a new run of the same runbook that touches only the nodes the last
 * run failed on (cluster steps re-check and act only where still needed).
 */
export function retryCommand(workflowId: string, opts: ClusterOpts): Promise<number> {
  const cluster = loadCluster(opts.kubeconfig, opts.inventory);
  return withTarget(async (target) => {
    const report = await withWorker(target, cluster, opts, async (client) => {
      const handle = client.workflow.getHandle<typeof runRunbook>(workflowId);
      const last = await handle.result();
      const nodes = [...new Set(last.failedNodes.map((f) => f.node))];
      if (nodes.length === 0) throw new UsageError(`${workflowId} has no failed nodes to retry`);
      const input = await originalInput(client, workflowId);
      const retry: RunInput = {
        ...input,
        onlyNodes: nodes,
        retryOf: `${workflowId}/${last.runId}`,
      };
      const started = await client.workflow.start(runRunbook, {
        workflowId,
        taskQueue: taskQueueFor(cluster.name),
        args: [retry],
      });
      console.log(
        `kubemend: retrying ${workflowId} on ${nodes.join(', ')} as run ${started.firstExecutionRunId}`,
      );
      return follow(started);
    });
    return finish(report, opts.report);
  }, true);
}

const NO_WORKER =
  'no worker answered for this run; start one with `kubemend resume <run> --kubeconfig ... --inventory ...` ' +
  '(or `kubemend worker`)';

/** `kubemend approve|reject <run> --reason ...`: answers the run's open approval gate. */
export function decideCommand(
  workflowId: string,
  approved: boolean,
  opts: { reason: string; by?: string },
): Promise<number> {
  return withTarget((target) =>
    withWorker(target, undefined, {}, async (client) => {
      if (!(await openRun(client, workflowId))) return 1;
      const handle = client.workflow.getHandle(workflowId);
      const decision = { by: opts.by ?? userInfo().username, reason: opts.reason };
      // An update needs a worker to run the workflow; do not wait forever for one.
      const record = await client.connection
        .withDeadline(Date.now() + 30_000, () =>
          handle.executeUpdate(approved ? approveUpdate : rejectUpdate, { args: [decision] }),
        )
        .catch((err: Error) => {
          throw new UsageError(/deadline/i.test(err.message) ? NO_WORKER : err.message);
        });
      console.log(
        `kubemend: ${workflowId}: step ${record.step} ${record.decision} by ${record.by}: ${record.reason}`,
      );
      return 0;
    }),
  );
}

/** `kubemend status <run>`: the live report; for a finished run, its final report. */
export function statusCommand(workflowId: string): Promise<number> {
  return withTarget((target) =>
    withWorker(target, undefined, {}, async (client) => {
      const handle = client.workflow.getHandle<typeof runRunbook>(workflowId);
      if ((await handle.describe()).status.name === 'COMPLETED') {
        console.log(formatReport(await handle.result()));
        return 0;
      }
      if (!(await openRun(client, workflowId))) return 1;
      const report = await client.connection
        .withDeadline(Date.now() + 15_000, () => handle.query(progressQuery))
        .catch(() => {
          throw new UsageError(NO_WORKER);
        });
      console.log(progressLines(undefined, report).join('\n'));
      return 0;
    }),
  );
}

/** `kubemend cancel <run>`: stops the run; in-flight node commands are killed. */
export function cancelCommand(workflowId: string): Promise<number> {
  return withTarget((target) =>
    withWorker(target, undefined, {}, async (client) => {
      if (!(await openRun(client, workflowId))) return 1;
      const handle = client.workflow.getHandle<typeof runRunbook>(workflowId);
      await handle.cancel();
      console.log(`kubemend: cancel requested for ${workflowId}`);
      const report = await client.connection
        .withDeadline(Date.now() + 60_000, () => handle.result())
        .catch(() => undefined);
      if (!report) {
        console.log(`kubemend: ${NO_WORKER}; the run stops when one picks it up`);
        return 1;
      }
      console.log(formatReport(report));
      return 0;
    }),
  );
}

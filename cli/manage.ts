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

async function withTarget<T>(fn: (target: TemporalTarget) => Promise<T>): Promise<T> {
  const target = await temporalTarget();
  try {
    return await fn(target);
  } finally {
    if (target.embedded) await stopDevServer(target.embedded);
  }
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
  });
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
  });
}

/** `kubemend approve|reject <run> --reason ...`: answers the run's open approval gate. */
export function decideCommand(
  workflowId: string,
  approved: boolean,
  opts: { reason: string; by?: string },
): Promise<number> {
  return withTarget((target) =>
    withWorker(target, undefined, {}, async (client) => {
      const handle = client.workflow.getHandle(workflowId);
      const decision = { by: opts.by ?? userInfo().username, reason: opts.reason };
      // An update needs a worker to run the workflow; do not wait forever for one.
      const record = await client.connection.withDeadline(Date.now() + 30_000, () =>
        handle.executeUpdate(approved ? approveUpdate : rejectUpdate, { args: [decision] }),
      );
      console.log(
        `kubemend: ${workflowId}: step ${record.step} ${record.decision} by ${record.by}: ${record.reason}`,
      );
      return 0;
    }),
  );
}

/** `kubemend status <run>`: the live report (finished runs: the final one). */
export function statusCommand(workflowId: string): Promise<number> {
  return withTarget((target) =>
    withWorker(target, undefined, {}, async (client) => {
      const report = await client.workflow.getHandle(workflowId).query(progressQuery);
      const done = report.status === 'finished';
      console.log(done ? formatReport(report) : progressLines(undefined, report).join('\n'));
      return 0;
    }),
  );
}

/** `kubemend cancel <run>`: stops the run; in-flight node commands are killed. */
export function cancelCommand(workflowId: string): Promise<number> {
  return withTarget((target) =>
    withWorker(target, undefined, {}, async (client) => {
      const handle = client.workflow.getHandle<typeof runRunbook>(workflowId);
      await handle.cancel();
      console.log(`kubemend: cancel requested for ${workflowId}`);
      const report = await client.connection
        .withDeadline(Date.now() + 60_000, () => handle.result())
        .catch(() => undefined);
      if (!report) {
        const now = await handle.query(progressQuery).catch(() => undefined);
        console.log(
          now ? formatReport(now) : 'kubemend: no worker answered; the run ends when one does',
        );
        return 1;
      }
      console.log(formatReport(report));
      return 0;
    }),
  );
}

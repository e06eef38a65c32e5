/**
 * Builds a kubemend worker: the `runRunbook` workflow plus the activities bound to the clusters
 * this worker serves. One worker per cluster task queue.
 */
import { fileURLToPath } from 'node:url';
import { Worker } from '@temporalio/worker';
import type { NativeConnection } from '@temporalio/worker';
import { createActivities } from '../activities/index.js';
import { taskQueueFor } from '../common/types.js';
import { workflowBundle } from './bundle.js';
import type { ClusterConfig } from './config.js';

export const WORKFLOWS_PATH = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));
export const RUNBOOK_DIR = fileURLToPath(new URL('../runbooks/', import.meta.url));

export interface WorkerOptions {
  connection: NativeConnection;
  namespace: string;
  cluster: ClusterConfig;
  runbookDir?: string;
  /** A pre-built workflow bundle; by default the cached one (see workers/bundle.ts). */
  workflowBundle?: { code: string } | { codePath: string };
}

/** Creates (but does not run) a worker for one cluster. */
export async function createKubemendWorker(options: WorkerOptions): Promise<Worker> {
  const { cluster } = options;
  const activities = createActivities({
    clusters: new Map([[cluster.name, cluster]]),
    runbookDir: options.runbookDir ?? RUNBOOK_DIR,
  });
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace,
    taskQueue: taskQueueFor(cluster.name),
    activities,
    workflowBundle: options.workflowBundle ?? (await workflowBundle(WORKFLOWS_PATH)),
    maxConcurrentActivityTaskExecutions: 20,
    // Stop promptly on shutdown; an interrupted activity is retried by the next worker.
    shutdownGraceTime: '5s',
  });
}

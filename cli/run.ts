/**
 * `kubemend run`: validates the runbook and the cluster config, starts (or attaches to) the
 * run's workflow, shows live progress and ends with the report. Without TEMPORAL_ADDRESS it
 * brings its own Temporal (the embedded dev server) and an in-process worker.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, Connection, WorkflowIdConflictPolicy } from '@temporalio/client';
import type { WorkflowHandle } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import type { Worker } from '@temporalio/worker';
import { loadRunbook } from '../common/load-runbook.js';
import type { Runbook } from '../common/runbook.js';
import type { RunInput, RunReport, Trigger } from '../common/types.js';
import { taskQueueFor, workflowIdFor } from '../common/types.js';
import { loadCluster } from '../workers/config.js';
import type { ClusterConfig } from '../workers/config.js';
import { installLogger } from '../workers/logging.js';
import { createKubemendWorker, RUNBOOK_DIR } from '../workers/worker.js';
import { progressQuery, runRunbook } from '../workflows/index.js';
import { ensureDevServer, stateDir, stopDevServer } from './dev-server.js';
import type { DevServer } from './dev-server.js';
import { formatReport, progressLines } from './report.js';

export interface RunOptions {
  kubeconfig: string;
  inventory: string;
  param: string[];
  report?: string;
  localWorker?: boolean;
  verbose?: boolean;
  trigger?: Trigger;
}

/** Reads a runbook given as a path or as a name in runbooks/. */
export function readRunbook(ref: string, params: Record<string, unknown>): Runbook {
  const file = existsSync(ref) ? ref : join(RUNBOOK_DIR, `${ref}.yaml`);
  if (!existsSync(file))
    throw new UsageError(`no runbook file ${ref}, and no runbooks/${ref}.yaml`);
  return loadRunbook(readFileSync(file, 'utf8'), file, params);
}

/** A mistake in how kubemend was called; exits 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** `k=v` pairs into an object; a value may contain `=`. */
export function parseParams(pairs: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of pairs) {
    const i = pair.indexOf('=');
    if (i <= 0) throw new UsageError(`--param ${pair}: expected name=value`);
    out[pair.slice(0, i)] = pair.slice(i + 1);
  }
  return out;
}

/** A Temporal connection: the configured server, or the embedded one. */
export interface TemporalTarget {
  address: string;
  namespace: string;
  embedded?: DevServer;
}

export async function temporalTarget(): Promise<TemporalTarget> {
  const namespace = process.env.TEMPORAL_NAMESPACE ?? 'default';
  if (process.env.TEMPORAL_ADDRESS) return { address: process.env.TEMPORAL_ADDRESS, namespace };
  const embedded = await ensureDevServer();
  return { address: embedded.address, namespace, embedded };
}

/** Runs a runbook to the end and returns the process exit code (0 only for `recovered`). */
export async function runCommand(runbookRef: string, opts: RunOptions): Promise<number> {
  const runbook = readRunbook(runbookRef, parseParams(opts.param));
  const cluster = loadCluster(opts.kubeconfig, opts.inventory);
  const target = await temporalTarget();
  if (target.embedded) {
    console.log(`kubemend: embedded Temporal at ${target.address}, UI ${target.embedded.uiUrl}`);
  }
  try {
    const report = await withWorker(target, cluster, opts, async (client) => {
      const input: RunInput = {
        runbook,
        cluster: cluster.name,
        trigger: opts.trigger ?? { via: 'cli', by: process.env.USER },
      };
      const handle = await client.workflow.start(runRunbook, {
        workflowId: workflowIdFor(runbook.metadata.name, cluster.name),
        taskQueue: taskQueueFor(cluster.name),
        args: [input],
        workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
      });
      console.log(`kubemend: run ${handle.workflowId} (${handle.firstExecutionRunId})`);
      return follow(handle);
    });
    return finish(report, opts.report);
  } finally {
    // The run is over (or handed back to Temporal): nothing needs the embedded server now, even
    // when an earlier, killed command started it.
    if (target.embedded) await stopDevServer({ ...target.embedded, started: true });
  }
}

let workerRunning = false;

/** True while a worker runs here; Temporal's runtime then handles Ctrl-C by stopping it. */
export function hasRunningWorker(): boolean {
  return workerRunning;
}

/** Runs a worker until it stops, marked as running for the Ctrl-C handler. */
export async function runMarked(worker: Worker): Promise<void> {
  workerRunning = true;
  try {
    await worker.run();
  } finally {
    workerRunning = false;
  }
}

/** Runs `fn` with a client, and with an in-process worker when Temporal is embedded. */
export async function withWorker<T>(
  target: TemporalTarget,
  cluster: ClusterConfig | undefined,
  opts: { localWorker?: boolean; verbose?: boolean },
  fn: (client: Client) => Promise<T>,
): Promise<T> {
  const connection = await Connection.connect({ address: target.address });
  const client = new Client({ connection, namespace: target.namespace });
  try {
    if (!cluster || !(target.embedded || opts.localWorker)) return await fn(client);
    const worker = await startWorker(target, cluster, opts.verbose);
    workerRunning = true;
    try {
      return await worker.runUntil(fn(client));
    } finally {
      workerRunning = false;
    }
  } finally {
    await connection.close();
  }
}

async function startWorker(
  target: TemporalTarget,
  cluster: ClusterConfig,
  verbose?: boolean,
): Promise<Worker> {
  const logs = join(stateDir(), 'logs');
  mkdirSync(logs, { recursive: true });
  // The decision log always goes to a file; --verbose shows it live instead.
  installLogger('INFO', verbose ? undefined : join(logs, 'worker.jsonl'));
  const connection = await NativeConnection.connect({ address: target.address });
  return createKubemendWorker({ connection, namespace: target.namespace, cluster });
}

/** Prints progress until the run finishes; returns its report. */
export async function follow(handle: WorkflowHandle<typeof runRunbook>): Promise<RunReport> {
  let last: RunReport | undefined;
  const result = handle.result();
  let done = false;
  void result.finally(() => (done = true)).catch(() => undefined);
  while (!done) {
    try {
      const now = await handle.query(progressQuery);
      for (const line of progressLines(last, now)) console.log(line);
      last = now;
    } catch {
      // The first workflow task may not have run yet; the next poll will tell.
    }
    await Promise.race([result.catch(() => undefined), new Promise((r) => setTimeout(r, 1000))]);
  }
  return result;
}

/** Prints the report, writes it as JSON if asked; the exit code (0 only for `recovered`). */
export function finish(report: RunReport, reportFile?: string): number {
  console.log(formatReport(report));
  if (reportFile) {
    writeFileSync(reportFile, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`kubemend: report written to ${reportFile}`);
  }
  return report.outcome === 'recovered' ? 0 : 1;
}

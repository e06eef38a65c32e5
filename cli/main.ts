/**
 * The `kubemend` command line.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { WorkflowNotFoundError } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { RunbookError, loadRunbook } from '../common/load-runbook.js';
import { KubemendError } from '../common/errors.js';
import { loadCluster } from '../workers/config.js';
import { installLogger } from '../workers/logging.js';
import { createKubemendWorker, RUNBOOK_DIR } from '../workers/worker.js';
import {
  cancelCommand,
  decideCommand,
  resumeCommand,
  retryCommand,
  statusCommand,
} from './manage.js';
import type { ClusterOpts } from './manage.js';
import { runCommand, temporalTarget, UsageError } from './run.js';

const program = new Command('kubemend')
  .description('Durable runbooks that repair Kubernetes clusters')
  .showHelpAfterError();

const clusterOptions = (cmd: Command): Command =>
  cmd
    .addOption(
      new Option('--kubeconfig <file>', 'kubeconfig of the cluster')
        .env('KUBECONFIG')
        .makeOptionMandatory(),
    )
    .addOption(
      new Option('--inventory <file>', 'SSH inventory of its nodes')
        .env('KUBEMEND_INVENTORY')
        .makeOptionMandatory(),
    );

clusterOptions(
  program
    .command('run')
    .description('run a runbook against a cluster and wait for its report')
    .argument('<runbook>', 'a runbook name from runbooks/ or a path to a runbook file'),
)
  .option('--param <name=value>', 'set a runbook parameter (repeatable)', collect, [])
  .option('--report <file>', 'also write the report as JSON')
  .option('--local-worker', 'run a worker in this process even with TEMPORAL_ADDRESS set')
  .option('--verbose', 'print worker logs (JSON lines) to stderr')
  .action(async (runbook: string, opts) => {
    process.exitCode = await runCommand(runbook, opts as Parameters<typeof runCommand>[1]);
  });

clusterOptions(
  program.command('worker').description('run a worker for one cluster (needs TEMPORAL_ADDRESS)'),
).action(async (opts: { kubeconfig: string; inventory: string }) => {
  const cluster = loadCluster(opts.kubeconfig, opts.inventory);
  installLogger((process.env.KUBEMEND_LOG_LEVEL as 'INFO' | undefined) ?? 'INFO');
  const target = await temporalTarget();
  const connection = await NativeConnection.connect({ address: target.address });
  const worker = await createKubemendWorker({ connection, namespace: target.namespace, cluster });
  console.error(`kubemend: worker for cluster ${cluster.name} on ${target.address}`);
  await worker.run();
});

for (const [name, describe] of [
  ['resume', 'continue a run whose worker or CLI died (starts a worker, follows to the end)'],
  ['retry', 'start a run that touches only the nodes a finished run failed on'],
] as const) {
  clusterOptions(program.command(name).description(describe).argument('<run>', 'workflow id'))
    .option('--report <file>', 'also write the report as JSON')
    .option('--verbose', 'print worker logs (JSON lines) to stderr')
    .action(async (run: string, opts: ClusterOpts) => {
      process.exitCode = await (name === 'resume' ? resumeCommand : retryCommand)(run, opts);
    });
}

for (const approved of [true, false]) {
  program
    .command(approved ? 'approve' : 'reject')
    .description(`${approved ? 'approve' : 'reject'} the run's pending approval gate`)
    .argument('<run>', 'workflow id')
    .requiredOption('--reason <text>', 'why (recorded in the report)')
    .option('--by <name>', 'who decides (default: your user name)')
    .action(async (run: string, opts: { reason: string; by?: string }) => {
      process.exitCode = await decideCommand(run, approved, opts);
    });
}

program
  .command('cancel')
  .description('stop a run; in-flight node commands are killed')
  .argument('<run>', 'workflow id')
  .action(async (run: string) => {
    process.exitCode = await cancelCommand(run);
  });

program
  .command('validate')
  .description('validate runbook files (default: every file in runbooks/)')
  .argument('[files...]')
  .action((files: string[]) => {
    const list =
      files.length > 0
        ? files
        : readdirSync(RUNBOOK_DIR)
            .filter((f) => f.endsWith('.yaml'))
            .map((f) => join(RUNBOOK_DIR, f));
    for (const file of list) {
      const rb = loadRunbook(readFileSync(file, 'utf8'), file);
      console.log(`${file}: ok (${rb.metadata.name}, ${rb.spec.steps.length} steps)`);
    }
  });

program
  .command('status')
  .description('show the live progress of a run')
  .argument('<workflowId>', 'e.g. calico-cni-token-recovery/seed')
  .action(async (workflowId: string) => {
    process.exitCode = await statusCommand(workflowId);
  });

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

try {
  await program.parseAsync();
} catch (err) {
  if (err instanceof WorkflowNotFoundError) {
    console.error(`kubemend: no run ${err.workflowId} on this Temporal server`);
    process.exitCode = 2;
  } else if (
    err instanceof RunbookError ||
    err instanceof UsageError ||
    err instanceof KubemendError
  ) {
    console.error(`kubemend: ${err.message}`);
    process.exitCode = 2;
  } else {
    throw err;
  }
}

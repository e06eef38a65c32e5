/**
 * The `kubemend` command line.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
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
import { hasRunningWorker, runCommand, runMarked, temporalTarget, UsageError } from './run.js';

const program = new Command('kubemend')
  .description('Durable runbooks that repair Kubernetes clusters')
  .showHelpAfterError()
  // Usage errors end up in the catch below (exit 2); set before the subcommands inherit it.
  .exitOverride();

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
  await runMarked(worker);
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
    const list = files.length > 0 ? files : defaultRunbooks();
    let bad = 0;
    for (const file of list) {
      try {
        const rb = loadRunbook(readFileSync(file, 'utf8'), file);
        console.log(`${file}: ok (${rb.metadata.name}, ${rb.spec.steps.length} steps)`);
      } catch (err) {
        bad++;
        const e = err as NodeJS.ErrnoException;
        console.error(e.code ? `${file}: cannot read: ${e.code}` : e.message);
      }
    }
    process.exitCode = bad > 0 ? 2 : 0;
  });

function defaultRunbooks(): string[] {
  return readdirSync(RUNBOOK_DIR)
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => join(RUNBOOK_DIR, f));
}

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

// A closed pipe (`kubemend ... | head`) must not crash a run that is still working.
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined);

const RESUME_HINT =
  'kubemend: interrupted; continue the run with `kubemend resume <run> ...` (its id is above)';

// Ctrl-C stops this process, never the run: its state is in Temporal and `resume` continues it.
let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    interrupted = true;
    console.error(
      `\nkubemend: ${signal}: stopping this process; the run itself goes on in Temporal.`,
    );
    // Without a worker there is nothing to wind down; with one, the runtime stops it first.
    if (!hasRunningWorker()) process.exit(130);
    // Client calls still in flight fail once their channel closes; that is expected now.
    process.on('uncaughtException', () => {
      console.error(RESUME_HINT);
      process.exit(130);
    });
  });
}

try {
  await program.parseAsync();
} catch (err) {
  if (err instanceof CommanderError) {
    // Commander printed the problem already; help and version are not errors.
    process.exitCode = err.exitCode === 0 ? 0 : 2;
  } else if (interrupted) {
    console.error(RESUME_HINT);
    process.exitCode = 130;
  } else if (err instanceof WorkflowNotFoundError) {
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

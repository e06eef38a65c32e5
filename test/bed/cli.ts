/**
 * `npm run bed -- up <scenario> [--dir D]`, `down [--dir D] [--clean]`, `status [--dir D]`.
 * `up` leaves the bed running detached and prints where its files are; `down` kills every
 * process recorded in bed.json (process groups and sessions included).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command } from 'commander';

import { openBed, startBed } from './index.js';
import { isAlive } from './procs.js';
import { loadScenario } from './scenario.js';
import { loadState } from './state.js';
import { REPO_ROOT } from './tools.js';

const BEDS = join(REPO_ROOT, '.kubemend', 'bed');
const LAST = join(BEDS, 'last');

/** The bed dir: --dir, else the one `up` used last. */
function bedDir(dir?: string): string {
  if (dir) return resolve(dir);
  if (existsSync(LAST)) return readFileSync(LAST, 'utf8').trim();
  throw new Error(`no bed known: pass --dir (no ${LAST})`);
}

async function up(scenario: string, opts: { dir?: string }): Promise<void> {
  const dir = resolve(opts.dir ?? join(BEDS, loadScenario(scenario).name));
  const started = Date.now();
  const bed = await startBed({ scenario, dir, keepAlive: true });
  mkdirSync(BEDS, { recursive: true });
  writeFileSync(LAST, dir + '\n');
  const ssh = `ssh -i ${bed.sshKeyPath} -o UserKnownHostsFile=${bed.knownHostsPath}`;
  const lines = [
    `bed ${bed.scenario} is ${bed.state.phase} (${((Date.now() - started) / 1000).toFixed(1)}s)`,
    `dir:              ${bed.dir}`,
    `apiserver:        ${bed.apiserverUrl}`,
    `kubeconfig:       ${bed.kubeconfigPath}   (user kubemend)`,
    `admin kubeconfig: ${bed.adminKubeconfigPath}   (user bed-admin)`,
    `inventory:        ${bed.inventoryPath}`,
    `ssh key:          ${bed.sshKeyPath}`,
    `known_hosts:      ${bed.knownHostsPath}`,
    ...bed.nodes.map((n) => `node ${n.name}:      ${ssh} -p ${n.port} root@${n.address}`),
    `stop with:        npm run bed -- down --dir ${bed.dir}`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

async function down(opts: { dir?: string; clean?: boolean }): Promise<void> {
  const bed = openBed(bedDir(opts.dir));
  await bed.stop({ clean: !!opts.clean });
  process.stdout.write(`bed in ${bed.dir} stopped${opts.clean ? ' and removed' : ''}\n`);
}

function status(opts: { dir?: string; json?: boolean }): void {
  const state = loadState(bedDir(opts.dir));
  const procs = Object.values(state.processes).map((p) => ({
    name: p.name,
    pid: p.pid,
    alive: isAlive(p.pid, p.match),
  }));
  if (opts.json) {
    process.stdout.write(
      JSON.stringify({ phase: state.phase, dir: state.dir, processes: procs }, null, 2) + '\n',
    );
    return;
  }
  const lines = [
    `bed ${state.scenario} in ${state.dir}: ${state.phase}`,
    `apiserver ${state.apiserverUrl}`,
  ];
  for (const p of procs) lines.push(`  ${p.alive ? 'up  ' : 'DOWN'} ${p.name} (pid ${p.pid})`);
  for (const n of state.nodes) lines.push(`  node ${n.name} ${n.address}:${n.port} ${n.timeSync}`);
  process.stdout.write(lines.join('\n') + '\n');
}

const program = new Command('bed').description('kubemend test bed: a local broken cluster');
program
  .command('up <scenario>')
  .description('start a bed (name or path) and leave it running')
  .option('--dir <dir>', 'bed directory')
  .action(up);
program
  .command('down')
  .description('stop a bed')
  .option('--dir <dir>', 'bed directory')
  .option('--clean', 'also remove the bed directory')
  .action(down);
program
  .command('status')
  .description('show a bed')
  .option('--dir <dir>', 'bed directory')
  .option('--json', 'machine-readable')
  .action(status);

program
  .parseAsync()
  .then(() => process.exit(0))
  .catch((err: unknown) => {
    process.stderr.write(`bed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });

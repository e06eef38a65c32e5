/**
 * Benchmark: wall time of the seed recovery on the real test bed, once tools are built and the
 * bed is up. Runs the CLI path (embedded Temporal, in-process worker) RUNS times on one bed,
 * breaking it again between runs, and prints one JSON line per run plus a summary.
 */
import { join } from 'node:path';
import { startBed } from '../test/bed/index.js';
import { runCommand } from '../cli/run.js';
import { adminCore, waitPastGrace } from '../test/support/kube.js';
import type { RunReport } from '../common/types.js';
import { readFileSync } from 'node:fs';

const RUNS = Number(process.env.RUNS ?? 3);
const bed = await startBed({ scenario: 'seed' });
process.env.KUBEMEND_HOME = join(bed.dir, 'kubemend');
delete process.env.TEMPORAL_ADDRESS;
const results: { wallTimeMs: number; cliMs: number; actions: number; outcome?: string }[] = [];
const log = console.log;
try {
  for (let i = 0; i < RUNS; i++) {
    if (i > 0) await bed.rebreak();
    // As in the demo: pods still in their grace period are not stuck yet.
    await waitPastGrace(adminCore(bed.adminKubeconfigPath), [
      'cert-manager',
      'kserve',
      'istio-system',
    ]);
    const report = join(bed.dir, `bench-${i}.json`);
    const t0 = Date.now();
    console.log = () => undefined; // keep the CLI's progress out of the benchmark output
    await runCommand('calico-cni-token-recovery', {
      kubeconfig: bed.kubeconfigPath,
      inventory: bed.inventoryPath,
      param: ['minStuckFor=1s'],
      report,
    });
    console.log = log;
    const r = JSON.parse(readFileSync(report, 'utf8')) as RunReport;
    const row = {
      wallTimeMs: r.wallTimeMs ?? 0,
      cliMs: Date.now() - t0,
      actions: r.actions.length,
      outcome: r.outcome,
    };
    results.push(row);
    log(JSON.stringify({ bench: 'seed-recovery', run: i + 1, ...row }));
  }
} finally {
  console.log = log;
  await bed.stop();
}
const wall = results.map((r) => r.wallTimeMs).sort((a, b) => a - b);
log(
  JSON.stringify({
    bench: 'seed-recovery',
    runs: RUNS,
    medianWallTimeMs: wall[Math.floor(wall.length / 2)],
    maxWallTimeMs: wall.at(-1),
  }),
);

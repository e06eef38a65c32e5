/**
 * `npm run demo`: brings up the test bed with the seed incident, runs the recovery runbook on it
 * through the real CLI path (embedded Temporal, in-process worker), prints the report and tears
 * the bed down. `npm run demo -- --report out.json` also writes the JSON report.
 */
import { join } from 'node:path';
import { Command } from 'commander';
import { startBed } from '../test/bed/index.js';
import { runCommand } from '../cli/run.js';
import { adminCore, waitPastGrace } from '../test/support/kube.js';

const opts = new Command('demo')
  .option('--report <file>', 'write the JSON report here')
  .option('--keep', 'leave the bed running afterwards (stop it with npm run bed -- down)')
  .parse()
  .opts<{ report?: string; keep?: boolean }>();

console.log('demo: starting the test bed with the seed incident (3 nodes suspended 96h)...');
const started = Date.now();
const bed = await startBed({ scenario: 'seed' });
console.log(
  `demo: bed up in ${((Date.now() - started) / 1000).toFixed(0)}s at ${bed.dir}; the cluster is broken, recovering`,
);

let code: number;
try {
  // Pods deleted seconds ago are still in their grace period, not stuck yet: let it run out.
  await waitPastGrace(adminCore(bed.adminKubeconfigPath), [
    'cert-manager',
    'kserve',
    'istio-system',
  ]);
  // Keep this demo's Temporal state with the bed, apart from the user's own runs.
  process.env.KUBEMEND_HOME = join(bed.dir, 'kubemend');
  delete process.env.TEMPORAL_ADDRESS;
  code = await runCommand('calico-cni-token-recovery', {
    kubeconfig: bed.kubeconfigPath,
    inventory: bed.inventoryPath,
    // The bed broke the cluster seconds ago; evidence (the Calico events) is what counts here.
    param: ['minStuckFor=1s'],
    report: opts.report,
  });
} finally {
  if (opts.keep) console.log(`demo: bed left running at ${bed.dir}`);
  else await bed.stop();
}
process.exitCode = code;

/**
 * The main job end to end: the seed incident on the real test bed (etcd, kube-apiserver,
 * controllers, simulated kubelets, sshd nodes), recovered by the real CLI on the embedded
 * Temporal dev server.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Bed } from '../bed/index.js';
import { readAudit, readLedger, startBed } from '../bed/index.js';
import type { RunReport } from '../../common/types.js';
import { kubemend } from '../support/cli.js';
import { adminCore, isReady, isStuck, key, podsIn, waitPastGrace } from '../support/kube.js';

const AFFECTED = ['cert-manager', 'kserve', 'istio-system'];
const HEALTHY = ['default', 'monitoring'];

describe('seed incident recovery', () => {
  let bed: Bed;
  let home: string;
  const run = (report: string) =>
    kubemend(
      [
        'run',
        'calico-cni-token-recovery',
        '--kubeconfig',
        bed.kubeconfigPath,
        '--inventory',
        bed.inventoryPath,
        '--param',
        'minStuckFor=1s',
        '--report',
        report,
      ],
      { KUBEMEND_HOME: home, TEMPORAL_ADDRESS: '' },
    );

  beforeAll(async () => {
    bed = await startBed({ scenario: 'seed' });
    home = mkdtempSync(join(tmpdir(), 'kubemend-e2e-'));
  });

  afterAll(async () => {
    await bed?.stop();
  });

  it('recovers the cluster, then a second run changes nothing', async () => {
    const core = adminCore(bed.adminKubeconfigPath);
    await waitPastGrace(core, AFFECTED);
    const before = await podsIn(core, AFFECTED);
    const stuck = before.filter(isStuck).map(key).sort();
    const healthyBefore = new Map(
      (await podsIn(core, HEALTHY)).map((p) => [key(p), p.metadata?.uid]),
    );
    expect(stuck.length).toBeGreaterThanOrEqual(6);
    expect(healthyBefore.size).toBeGreaterThan(0);

    const first = await run(join(home, 'first.json'));

    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    const report = JSON.parse(readFileSync(join(home, 'first.json'), 'utf8')) as RunReport;
    expect(report.outcome).toBe('recovered');
    expect(report.wallTimeMs).toBeGreaterThan(0);

    const syncs = report.actions.filter((a) => a.kind === 'node.syncClock');
    expect(syncs.map((a) => a.target).sort()).toEqual(
      bed.nodes.map((n) => `node/${n.name}`).sort(),
    );
    for (const s of syncs) {
      expect(Math.abs(Number(s.details?.offsetBeforeMs) + 96 * 3_600_000)).toBeLessThan(60_000);
      expect(Math.abs(Number(s.details?.offsetAfterMs))).toBeLessThan(1000);
    }

    const restarts = report.actions.filter((a) => a.kind === 'daemonset.rolloutRestart');
    expect(restarts).toEqual([
      expect.objectContaining({ target: 'daemonset/kube-system/calico-node', result: 'ok' }),
    ]);

    const deleted = report.actions
      .filter((a) => a.kind === 'pod.forceDelete' && a.result === 'ok')
      .map((a) => a.target.replace(/^pod\//, ''))
      .sort();
    expect(deleted).toEqual(stuck);

    const after = await podsIn(core, AFFECTED);
    expect(after.filter((p) => !isReady(p)).map(key)).toEqual([]);
    const healthyAfter = new Map(
      (await podsIn(core, HEALTHY)).map((p) => [key(p), p.metadata?.uid]),
    );
    expect(healthyAfter).toEqual(healthyBefore);

    for (const node of bed.nodes) {
      const cmds = readLedger(bed, node.name).map((e) => e.cmd);
      expect(cmds.filter((c) => /makestep|timesyncd|ntpdate/.test(c))).toHaveLength(1);
      expect(cmds.filter((c) => c === 'systemctl restart kubelet')).toHaveLength(1);
    }

    const secondStarted = Date.now();
    const second = await run(join(home, 'second.json'));

    expect(second.code).toBe(0);
    const again = JSON.parse(readFileSync(join(home, 'second.json'), 'utf8')) as RunReport;
    expect(again.outcome).toBe('recovered');
    expect(again.actions).toEqual([]);
    const mutations = readAudit(bed, {
      user: 'kubemend',
      verbs: 'mutating',
      since: new Date(secondStarted),
    });
    expect(mutations).toEqual([]);
  });
});

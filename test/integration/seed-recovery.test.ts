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
import {
  adminApps,
  adminCore,
  eventually,
  isReady,
  isStuck,
  key,
  podsIn,
  waitPastGrace,
} from '../support/kube.js';

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

  it('never deletes a stuck pod it cannot safely lose, and names it for a human', async () => {
    await bed.rebreak();
    const core = adminCore(bed.adminKubeconfigPath);
    const apps = adminApps(bed.adminKubeconfigPath);
    const container = [{ name: 'c', image: 'registry.example/debug:1' }];
    // Created while the CNI token is expired: both hang in ContainerCreating with Calico events.
    await core.createNamespacedPod({
      namespace: 'kserve',
      body: {
        metadata: { name: 'bare-debug' },
        spec: { nodeName: 'node-1', containers: container },
      },
    });
    await apps.createNamespacedStatefulSet({
      namespace: 'kserve',
      body: {
        metadata: { name: 'model-cache' },
        spec: {
          serviceName: 'model-cache',
          replicas: 1,
          selector: { matchLabels: { app: 'model-cache' } },
          template: {
            metadata: { labels: { app: 'model-cache' } },
            spec: { containers: container },
          },
        },
      },
    });
    const guarded = ['bare-debug', 'model-cache-0'];
    await eventually('sandbox failures on the guarded pods', async () => {
      const events = await core.listNamespacedEvent({
        namespace: 'kserve',
        fieldSelector: 'reason=FailedCreatePodSandBox',
      });
      return guarded.every((name) => events.items.some((e) => e.involvedObject.name === name));
    });
    await waitPastGrace(core, AFFECTED);
    const uids = await Promise.all(
      guarded.map(
        async (name) => (await core.readNamespacedPod({ namespace: 'kserve', name })).metadata?.uid,
      ),
    );
    const since = new Date();

    const result = await run(join(home, 'guarded.json'));

    expect(result.code).toBe(1);
    const report = JSON.parse(readFileSync(join(home, 'guarded.json'), 'utf8')) as RunReport;
    expect(report.outcome).toBe('needs-human');
    expect(report.attention).toEqual(
      expect.arrayContaining([
        expect.stringMatching(
          /^pod kserve\/bare-debug is stuck \(creating\) but left alone: has no controller/,
        ),
        expect.stringMatching(
          /^pod kserve\/model-cache-0 is stuck \(creating\) but left alone: belongs to a StatefulSet/,
        ),
      ]),
    );
    const touched = report.actions.filter((a) =>
      guarded.some((name) => a.target === `pod/kserve/${name}`),
    );
    expect(touched).toEqual([]);
    const deletes = readAudit(bed, { user: 'kubemend', verbs: ['delete'], since }).filter((e) =>
      guarded.includes(e.objectRef?.name ?? ''),
    );
    expect(deletes).toEqual([]);
    const after = await Promise.all(
      guarded.map(
        async (name) => (await core.readNamespacedPod({ namespace: 'kserve', name })).metadata?.uid,
      ),
    );
    expect(after).toEqual(uids);
  });
});

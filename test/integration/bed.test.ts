/**
 * The test bed itself, on real parts: the seed scenario must show the incident through the
 * Kubernetes API and over SSH, and the CNI mechanism must heal a node once its clock is stepped
 * and its calico-node restarts.
 */
import { execFile } from 'node:child_process';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import type { CoreV1Event, V1Pod } from '@kubernetes/client-node';

import type { Bed } from '../bed/index.js';
import { CALICO_ADD_UNAUTHORIZED, readAudit, readLedger, startBed } from '../bed/index.js';
import { waitFor } from '../bed/procs.js';
import { parseScenario } from '../bed/scenario.js';

const AFFECTED = ['cert-manager', 'kserve', 'istio-system'];
const HEALTHY = ['default', 'monitoring'];
const PROBE_NS = 'bed-probe';
const SUSPEND_S = 96 * 3600;
// Jest applies `testTimeout` only globally, not per project: give hooks and tests their own.
const START_TIMEOUT = 240_000;
const STEP_TIMEOUT = 120_000;
const SANDBOX_MESSAGE = new RegExp(
  '^Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for ' +
    'sandbox "[0-9a-f]{64}": plugin type="calico" failed \\(add\\): error getting ' +
    'ClusterInformation: connection is unauthorized: Unauthorized$',
);

interface SshResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `cmd` on a bed node with the OpenSSH client, pinning the node's host key. */
function ssh(bed: Bed, node: string, cmd: string): Promise<SshResult> {
  const n = bed.nodes.find((x) => x.name === node);
  if (!n) throw new Error(`no node ${node}`);
  const args = ['-i', bed.sshKeyPath, '-o', `UserKnownHostsFile=${bed.knownHostsPath}`];
  args.push('-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=5');
  args.push('-p', String(n.port), `root@${n.address}`, cmd);
  return new Promise((resolve) => {
    execFile('ssh', args, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

function client(kubeconfig: string): CoreV1Api {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  return kc.makeApiClient(CoreV1Api);
}

const waiting = (p: V1Pod): string | undefined =>
  p.status?.containerStatuses?.[0]?.state?.waiting?.reason;
const isReady = (p: V1Pod): boolean =>
  p.status?.phase === 'Running' &&
  !!p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');

async function pods(core: CoreV1Api, namespaces: string[]): Promise<V1Pod[]> {
  const lists = await Promise.all(
    namespaces.map((namespace) => core.listNamespacedPod({ namespace })),
  );
  return lists.flatMap((l) => l.items);
}

async function events(core: CoreV1Api, ns: string, reason: string): Promise<CoreV1Event[]> {
  return (await core.listNamespacedEvent({ namespace: ns, fieldSelector: `reason=${reason}` }))
    .items;
}

function probePod(name: string, node: string): V1Pod {
  return {
    metadata: { name, namespace: PROBE_NS },
    spec: {
      nodeName: node,
      terminationGracePeriodSeconds: 1,
      containers: [{ name: 'c', image: 'busybox' }],
    },
  };
}

async function nodeNow(bed: Bed, node: string): Promise<number> {
  const r = await ssh(bed, node, 'date +%s');
  expect(r).toMatchObject({ code: 0 });
  return Number(r.stdout.trim());
}

describe('test bed, seed scenario', () => {
  let bed: Bed;
  let admin: CoreV1Api;

  beforeAll(async () => {
    bed = await startBed({ scenario: 'seed' });
    admin = client(bed.adminKubeconfigPath);
    await admin.createNamespace({ body: { metadata: { name: PROBE_NS } } });
  }, START_TIMEOUT);

  afterAll(async () => {
    await bed?.stop();
  }, STEP_TIMEOUT);

  it(
    'shows Terminating pods and ContainerCreating pods with the exact CNI event',
    async () => {
      const affected = await pods(admin, AFFECTED);
      const terminating = affected.filter((p) => p.metadata?.deletionTimestamp);
      const creating = affected.filter((p) => !p.metadata?.deletionTimestamp);

      expect(terminating).toHaveLength(6);
      expect(creating).toHaveLength(6);
      for (const p of creating) {
        expect(p.status?.phase).toBe('Pending');
        expect(waiting(p)).toBe('ContainerCreating');
      }
      for (const ns of AFFECTED) {
        const evs = await events(admin, ns, 'FailedCreatePodSandBox');
        const stuck = creating.filter((p) => p.metadata?.namespace === ns);
        expect(evs.map((e) => e.involvedObject.uid).sort()).toEqual(
          stuck.map((p) => p.metadata?.uid).sort(),
        );
        for (const e of evs) {
          expect(e).toMatchObject({ type: 'Warning', source: { component: 'kubelet' } });
          expect(e.message).toMatch(SANDBOX_MESSAGE);
          expect(e.message).toContain(CALICO_ADD_UNAUTHORIZED);
        }
        const kill = await events(admin, ns, 'FailedKillPod');
        expect(kill.length).toBe(terminating.filter((p) => p.metadata?.namespace === ns).length);
        expect(kill[0]?.message).toContain(
          'plugin type="calico" failed (delete): error getting ClusterInformation',
        );
      }
    },
    STEP_TIMEOUT,
  );

  it(
    'leaves the healthy workloads Running and Ready',
    async () => {
      const healthy = await pods(admin, HEALTHY);

      expect(healthy).toHaveLength(3);
      expect(healthy.filter((p) => !isReady(p))).toEqual([]);
    },
    STEP_TIMEOUT,
  );

  it(
    'shows every node clock about 96h behind over SSH, with expired CNI tokens',
    async () => {
      for (const n of bed.nodes) {
        const offset = (await nodeNow(bed, n.name)) - Date.now() / 1000;

        expect(Math.abs(offset + SUSPEND_S)).toBeLessThan(30);
        expect(bed.cniToken(n.name)?.exp).toBeLessThan(Date.now() / 1000);
        const kubeconfig = await ssh(
          bed,
          n.name,
          'cat "$KUBEMEND_NODE_DIR/etc/cni/net.d/calico-kubeconfig"',
        );
        expect(kubeconfig.stdout).toContain('token: ');
      }
    },
    STEP_TIMEOUT,
  );

  it('has empty ledgers and no mutation by kubemend before anyone acts', () => {
    for (const n of bed.nodes) expect(readLedger(bed, n.name)).toEqual([]);

    expect(readAudit(bed, { user: 'kubemend', verbs: 'mutating' })).toEqual([]);
  });

  it(
    'heals node-1 only, after chronyc makestep and a calico-node restart there',
    async () => {
      await admin.createNamespacedPod({ namespace: PROBE_NS, body: probePod('probe-1', 'node-1') });
      await admin.createNamespacedPod({ namespace: PROBE_NS, body: probePod('probe-2', 'node-2') });
      await waitFor(
        'probe-1 to fail its sandbox',
        async () => (await events(admin, PROBE_NS, 'FailedCreatePodSandBox')).length === 2,
        { timeoutMs: 20_000 },
      );

      const step = await ssh(bed, 'node-1', 'chronyc makestep');

      expect(step).toMatchObject({ code: 0, stdout: '200 OK\n' });
      expect(Math.abs((await nodeNow(bed, 'node-1')) - Date.now() / 1000)).toBeLessThan(5);
      expect(readLedger(bed, 'node-1').map((e) => e.cmd)).toEqual(['chronyc makestep']);
      expect(readLedger(bed, 'node-1')[0]?.at).toBeGreaterThan(Date.now() - 60_000);

      const calico = await admin.listNamespacedPod({
        namespace: 'kube-system',
        labelSelector: 'k8s-app=calico-node',
        fieldSelector: 'spec.nodeName=node-1',
      });
      const old = calico.items[0]?.metadata?.name ?? '';
      const restartedAt = Date.now() / 1000;
      await admin.deleteNamespacedPod({ namespace: 'kube-system', name: old });

      await waitFor(
        'a fresh CNI token on node-1',
        () => (bed.cniToken('node-1')?.iat ?? 0) >= Math.floor(restartedAt),
        { timeoutMs: 30_000 },
      );
      const token = bed.cniToken('node-1');
      expect((token?.exp ?? 0) - (token?.iat ?? 0)).toBe(24 * 3600);
      const healed = await waitFor(
        'node-1 pods to run and its Terminating pods to go',
        async () => {
          const all = (
            await admin.listPodForAllNamespaces({ fieldSelector: 'spec.nodeName=node-1' })
          ).items;
          return all.every((p) => !p.metadata?.deletionTimestamp && isReady(p)) && all;
        },
        { timeoutMs: 40_000, intervalMs: 500 },
      );
      expect(healed.map((p) => p.metadata?.name)).toContain('probe-1');
      expect(
        healed.find((p) => p.metadata?.labels?.['k8s-app'] === 'calico-node')?.metadata?.name,
      ).not.toBe(old);

      const probe2 = await admin.readNamespacedPod({ namespace: PROBE_NS, name: 'probe-2' });
      expect(waiting(probe2)).toBe('ContainerCreating');
      expect(readLedger(bed, 'node-2')).toEqual([]);
      expect(readLedger(bed, 'node-3')).toEqual([]);
    },
    STEP_TIMEOUT,
  );

  it(
    'keeps calico-node crashing on a node whose clock is still skewed',
    async () => {
      const calico = await admin.listNamespacedPod({
        namespace: 'kube-system',
        labelSelector: 'k8s-app=calico-node',
        fieldSelector: 'spec.nodeName=node-2',
      });
      await admin.deleteNamespacedPod({
        namespace: 'kube-system',
        name: calico.items[0]?.metadata?.name ?? '',
      });

      const crashing = await waitFor(
        'calico-node on node-2 to crash-loop',
        async () => {
          const l = await admin.listNamespacedPod({
            namespace: 'kube-system',
            labelSelector: 'k8s-app=calico-node',
            fieldSelector: 'spec.nodeName=node-2',
          });
          return l.items.find(
            (p) => !p.metadata?.deletionTimestamp && waiting(p) === 'CrashLoopBackOff',
          );
        },
        { timeoutMs: 30_000 },
      );
      const evs = await admin.listNamespacedEvent({
        namespace: 'kube-system',
        fieldSelector: `involvedObject.uid=${crashing.metadata?.uid},reason=BackOff`,
      });
      expect(evs.items[0]?.message).toContain('x509: certificate has expired or is not yet valid');
      expect(bed.cniToken('node-2')?.exp).toBeLessThan(Date.now() / 1000);
    },
    STEP_TIMEOUT,
  );

  it(
    'records mutations by user kubemend in the audit log',
    async () => {
      const kubemend = client(bed.kubeconfigPath);

      await kubemend.createNamespacedConfigMap({
        namespace: PROBE_NS,
        body: { metadata: { name: 'audit-probe' } },
      });

      const events = await waitFor(
        'the audit event',
        () => {
          const evs = readAudit(bed, { user: 'kubemend', verbs: 'mutating' });
          return evs.length > 0 && evs;
        },
        { timeoutMs: 10_000 },
      );
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({
        verb: 'create',
        objectRef: { resource: 'configmaps', namespace: PROBE_NS, name: 'audit-probe' },
      });
    },
    STEP_TIMEOUT,
  );

  it(
    'makes a node unreachable with stopNode and reachable again with startNode',
    async () => {
      await bed.stopNode('node-3');

      const down = await ssh(bed, 'node-3', 'true');
      expect(down.code).toBe(255);
      expect(down.stderr).toMatch(/Connection refused/);

      await bed.startNode('node-3');

      const offset = (await nodeNow(bed, 'node-3')) - Date.now() / 1000;
      expect(Math.abs(offset + SUSPEND_S)).toBeLessThan(30);
    },
    STEP_TIMEOUT,
  );

  it(
    'survives an apiserver restart: the simulator keeps starting pods',
    async () => {
      await bed.restartApiserver();

      await waitFor(
        'the probe pod to be created',
        async () =>
          !!(await admin.createNamespacedPod({
            namespace: PROBE_NS,
            body: probePod('after-restart', 'node-1'),
          })),
        { timeoutMs: 20_000 },
      );
      await waitFor(
        'the probe pod to run',
        async () =>
          isReady(await admin.readNamespacedPod({ namespace: PROBE_NS, name: 'after-restart' })),
        { timeoutMs: 30_000 },
      );
    },
    STEP_TIMEOUT,
  );
});

describe('scenario loader', () => {
  it('names the file and every invalid field', () => {
    const text = [
      'apiVersion: kubemend.io/v1alpha1',
      'kind: BedScenario',
      'name: broken',
      'nodes: [{ name: n1, timeSync: ntpd }]',
      'suspend: { duration: 4 days }',
    ].join('\n');

    expect(() => parseScenario(text, 'broken.yaml')).toThrow(
      /invalid scenario broken\.yaml:\n {2}nodes\[0\]\.timeSync: .*\n {2}suspend\.duration: not a duration/,
    );
  });

  it('rejects a token that would not expire during the suspend', () => {
    const text =
      'apiVersion: kubemend.io/v1alpha1\nkind: BedScenario\nname: x\nnodes: [{ name: n1, timeSync: chrony }]\ncniTokenTtl: 200h\nsuspend: { duration: 96h }\n';

    expect(() => parseScenario(text, 'x.yaml')).toThrow(
      /suspend\.duration: the CNI token .* must expire during the suspend/,
    );
  });
});

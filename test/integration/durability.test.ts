/**
 * Durability on the real test bed, with faults injected for real: `kubemend worker` processes
 * killed with SIGKILL, the Temporal dev server killed and restarted on its database, a node's
 * sshd stopped, kube-apiserver restarted, and approval gates across all of that.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client, WorkflowHandle } from '@temporalio/client';
import type { Bed } from '../bed/index.js';
import { startBed } from '../bed/index.js';
import { stopDevServer } from '../../cli/dev-server.js';
import type { DevServer } from '../../cli/dev-server.js';
import { loadRunbook } from '../../common/load-runbook.js';
import type { Runbook } from '../../common/runbook.js';
import type { RunReport, StepStatus } from '../../common/types.js';
import { taskQueueFor, workflowIdFor } from '../../common/types.js';
import { progressQuery, runRunbook } from '../../workflows/index.js';
import { kubemend, startKubemend } from '../support/cli.js';
import { FaultProxy } from '../support/fault-proxy.js';
import { adminApps, adminCore, eventually, waitPastGrace } from '../support/kube.js';
import { TestTemporal, WorkerProcess } from '../support/temporal.js';

const RUNBOOK_FILE = 'runbooks/calico-cni-token-recovery.yaml';
const WORKFLOW_ID = workflowIdFor('calico-cni-token-recovery', 'seed');
const AFFECTED = ['cert-manager', 'kserve', 'istio-system'];
const SYNC_CMD = /makestep|restart systemd-timesyncd|ntpdate/;

/** Whether a local process (bed nodes run their commands on this machine) is alive, not a zombie. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

function seedRunbook(change: (rb: Runbook) => void = () => undefined): Runbook {
  const rb = loadRunbook(readFileSync(RUNBOOK_FILE, 'utf8'), RUNBOOK_FILE, { minStuckFor: '1s' });
  change(rb);
  return rb;
}

describe('durability', () => {
  let bed: Bed;
  let temporal: TestTemporal;
  let worker: WorkerProcess;
  let client: Client;
  let closeClient: () => Promise<void>;

  const newWorker = async (): Promise<void> => {
    worker = await WorkerProcess.start(temporal.address, bed.kubeconfigPath, bed.inventoryPath);
  };
  /**
   * Makes sure the bed is broken (breaking it again if the last test recovered it), and waits
   * until its Terminating pods count as stuck. Tests that recover the bed mark it `ready`.
   */
  const broken = async (): Promise<void> => {
    if (bed.state.phase !== 'broken') await bed.rebreak();
    await waitPastGrace(adminCore(bed.adminKubeconfigPath), AFFECTED);
  };
  const start = (runbook: Runbook): Promise<WorkflowHandle<typeof runRunbook>> =>
    client.workflow.start(runRunbook, {
      workflowId: WORKFLOW_ID,
      taskQueue: taskQueueFor('seed'),
      args: [{ runbook, cluster: 'seed', trigger: { via: 'cli', by: 'durability-test' } }],
    });
  /** Polls the live report until `ready` holds; returns that report. */
  const waitFor = async (
    handle: WorkflowHandle<typeof runRunbook>,
    ready: (r: RunReport) => boolean,
  ): Promise<RunReport> => {
    const deadline = Date.now() + 120_000;
    for (;;) {
      const r = await handle.query(progressQuery).catch(() => undefined);
      if (r && ready(r)) return r;
      if (Date.now() > deadline)
        throw new Error(`condition not reached: ${JSON.stringify(r?.steps)}`);
      await new Promise((res) => setTimeout(res, 100));
    }
  };
  const ledgerSince = (node: string, since: number): string[] =>
    bed
      .readLedger(node)
      .filter((e) => e.at >= since)
      .map((e) => e.cmd);
  const calicoPatchesSince = (since: number): number =>
    bed
      .readAudit({ user: 'kubemend', verbs: ['patch'], since: new Date(since) })
      .filter((e) => e.objectRef?.resource === 'daemonsets' && e.objectRef.name === 'calico-node')
      .length;
  const sshLogins = (node: string): number => {
    const dir = bed.state.nodes.find((n) => n.name === node)?.dir ?? '';
    return (readFileSync(join(dir, 'sshd.log'), 'utf8').match(/Accepted publickey/g) ?? []).length;
  };

  beforeAll(async () => {
    bed = await startBed({ scenario: 'seed' });
    temporal = await TestTemporal.start();
    ({ client, close: closeClient } = await temporal.client());
    await newWorker();
  });

  afterAll(async () => {
    await worker?.kill9();
    await closeClient?.();
    await temporal?.stop();
    await bed?.stop();
  });

  // Every step boundary and the middle of every step type of the seed runbook.
  const KILL_POINTS: [string, StepStatus][] = [
    ['diagnose', 'running'],
    ['diagnose', 'done'],
    ['clocks', 'running'],
    ['sync', 'running'],
    ['sync', 'done'],
    ['kubelet', 'running'],
    ['kubelet', 'done'],
    ['evict', 'running'],
    ['calico', 'running'],
    ['calico', 'done'],
    ['calico-ready', 'running'],
    ['verify', 'running'],
  ];

  it.each(KILL_POINTS)(
    'finishes recovered when the worker is killed with step %s %s, repeating nothing',
    async (stepId, status) => {
      await broken();
      const since = Date.now();
      const handle = await start(seedRunbook());

      const seen = await waitFor(handle, (r) => {
        const s = r.steps.find((x) => x.id === stepId);
        return s?.status === status || s?.status === 'done' || r.status === 'finished';
      });
      await worker.kill9();
      await newWorker();
      const report = await handle.result();
      bed.state.phase = 'ready';

      expect(seen.status).toBe('running');
      expect(report.outcome).toBe('recovered');
      for (const node of bed.nodes.map((n) => n.name)) {
        const cmds = ledgerSince(node, since);
        expect(cmds.filter((c) => SYNC_CMD.test(c))).toHaveLength(1);
        expect(cmds.filter((c) => c === 'systemctl restart kubelet')).toHaveLength(1);
      }
      expect(calicoPatchesSince(since)).toBe(1);
    },
  );

  // A node change still running on the node when its worker dies: the clock step (chronyc
  // waiting on a slow NTP source) and the kubelet restart (a unit slow to come back).
  const ORPHANS: ['sync' | 'kubelet', string, (node: string, seconds: number) => void][] = [
    ['sync', 'ntp-wait.pid', (node, s) => bed.setNtpDelay(node, s)],
    ['kubelet', 'unit-wait.pid', (node, s) => bed.setUnitDelay(node, s)],
  ];

  it.each(ORPHANS)(
    'waits out the %s command a killed worker left running instead of running it again',
    async (stepId, pidName, setDelay) => {
      await broken();
      const pidFile = join(bed.state.nodes.find((n) => n.name === 'node-1')?.dir ?? '', pidName);
      rmSync(pidFile, { force: true });
      setDelay('node-1', 15); // node-1's command is still running when its worker dies
      const since = Date.now();
      const handle = await start(seedRunbook());
      let report: RunReport;
      try {
        await waitFor(handle, (r) => {
          const nodes = r.steps.find((s) => s.id === stepId)?.nodes ?? {};
          return nodes['node-1'] === 'running' && existsSync(pidFile);
        });
        await worker.kill9();
        await newWorker();
        report = await handle.result();
      } finally {
        setDelay('node-1', 0);
      }
      bed.state.phase = 'ready';

      expect(report.outcome).toBe('recovered');
      for (const node of bed.nodes.map((n) => n.name)) {
        const cmds = ledgerSince(node, since);
        expect(cmds.filter((c) => SYNC_CMD.test(c))).toHaveLength(1);
        expect(cmds.filter((c) => c === 'systemctl restart kubelet')).toHaveLength(1);
      }
      // The change the dead worker started is reported once per node, as made by that attempt.
      const kind = stepId === 'sync' ? 'node.syncClock' : 'node.restartUnit';
      const changes = report.actions.filter((a) => a.kind === kind);
      expect(changes.map((a) => a.target).sort()).toEqual([
        'node/node-1',
        'node/node-2',
        'node/node-3',
      ]);
      const first = changes.find((a) => a.target === 'node/node-1');
      expect(first?.details?.note).toBe('finished by an earlier attempt');
      if (stepId === 'sync') {
        const before = Number(first?.details?.offsetBeforeMs);
        expect(Math.abs(before + 96 * 3_600_000)).toBeLessThan(60_000);
        expect(Math.abs(Number(first?.details?.offsetAfterMs))).toBeLessThan(1000);
      }
    },
  );

  it('resumes a run whose CLI, with its in-process worker and embedded server, was killed', async () => {
    await broken();
    const home = mkdtempSync(join(tmpdir(), 'kubemend-resume-'));
    const env = { KUBEMEND_HOME: home, TEMPORAL_ADDRESS: '' };
    const cluster = ['--kubeconfig', bed.kubeconfigPath, '--inventory', bed.inventoryPath];
    const since = Date.now();

    const run = startKubemend(
      ['run', 'calico-cni-token-recovery', ...cluster, '--param', 'minStuckFor=1s'],
      env,
    );
    const deadline = Date.now() + 120_000;
    while (!/\+ sync +done/.test(run.output()) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    run.child.kill('SIGKILL');
    await run.done;
    const resumed = await kubemend(
      ['resume', WORKFLOW_ID, ...cluster, '--report', join(home, 'r.json')],
      env,
    );
    const server = JSON.parse(readFileSync(join(home, 'server.json'), 'utf8')) as DevServer;
    await stopDevServer({ ...server, started: true });

    expect(resumed.code).toBe(0);
    const report = JSON.parse(readFileSync(join(home, 'r.json'), 'utf8')) as RunReport;
    expect(report.outcome).toBe('recovered');
    for (const node of bed.nodes.map((n) => n.name)) {
      const cmds = ledgerSince(node, since);
      expect(cmds.filter((c) => SYNC_CMD.test(c))).toHaveLength(1);
      expect(cmds.filter((c) => c === 'systemctl restart kubelet')).toHaveLength(1);
    }
    bed.state.phase = 'ready';
  });

  it('finishes when the Temporal server crashes and restarts mid-run', async () => {
    await broken();
    const handle = await start(seedRunbook());

    await waitFor(handle, (r) => r.steps.find((s) => s.id === 'sync')?.status !== 'pending');
    await temporal.crashAndRestart();
    await worker.kill9(); // a worker that lost its server may linger; give the run a fresh one
    await newWorker();
    const report = await handle.result();
    bed.state.phase = 'ready';

    expect(report.outcome).toBe('recovered');
    expect(report.actions.filter((a) => a.kind === 'daemonset.rolloutRestart')).toHaveLength(1);
  });

  it('finishes when kube-apiserver restarts mid-run', async () => {
    await broken();
    const handle = await start(seedRunbook());

    await waitFor(handle, (r) => r.steps.find((s) => s.id === 'evict')?.status !== 'pending');
    await bed.restartApiserver();
    const report = await handle.result();
    bed.state.phase = 'ready';

    expect(report.outcome).toBe('recovered');
  });

  it('finishes through 429s and 5xx answers, and a lost answer repeats no restart or delete', async () => {
    await broken();
    const apps = adminApps(bed.adminKubeconfigPath);
    const calico = { namespace: 'kube-system', name: 'calico-node' };
    const generation = (await apps.readNamespacedDaemonSet(calico)).metadata?.generation ?? 0;
    const lost = new Set<string>();
    const refusedLast = new Set<string>();
    // Every other request is refused (429 with Retry-After, or 503), but never the same request
    // twice in a row, so each gets through within kubemend's request-level retries; the first
    // pod delete and the calico-node patch reach the apiserver but their answers are lost.
    const proxy = await FaultProxy.start(
      bed.state.apiserverUrl,
      join(bed.dir, 'pki', 'apiserver'), // kube-apiserver's self-generated serving pair
      ({ n, method, path }) => {
        const mutation = /\/pods\/|\/daemonsets\/calico-node/.exec(path)?.[0];
        if (mutation && ['DELETE', 'PATCH'].includes(method) && !lost.has(mutation)) {
          lost.add(mutation);
          return { kind: 'lose-answer', status: 504 };
        }
        const request = `${method} ${path}`;
        if (refusedLast.delete(request) || n % 2 === 1) return undefined;
        refusedLast.add(request);
        return n % 4 === 0
          ? { kind: 'refuse', status: 429, retryAfterSec: 1 }
          : { kind: 'refuse', status: 503 };
      },
    );
    const kubeconfig = proxy.rewriteKubeconfig(
      bed.kubeconfigPath,
      join(bed.dir, 'faulty.kubeconfig'),
    );
    await worker.kill9();
    worker = await WorkerProcess.start(temporal.address, kubeconfig, bed.inventoryPath);

    const report = await (await start(seedRunbook())).result().finally(async () => {
      await worker.kill9();
      await proxy.stop();
      await newWorker();
    });
    bed.state.phase = 'ready';

    expect(report.outcome).toBe('recovered');
    const statuses = new Set(proxy.injected.map((i) => `${i.fault.kind} ${i.fault.status}`));
    expect([...statuses].sort()).toEqual(['lose-answer 504', 'refuse 429', 'refuse 503']);
    expect(proxy.injected.filter((i) => i.fault.kind === 'lose-answer')).toEqual([
      expect.objectContaining({ method: 'DELETE', path: expect.stringMatching(/\/pods\//) }),
      expect.objectContaining({ method: 'PATCH', path: expect.stringMatching(/calico-node/) }),
    ]);
    // The patch was applied twice with the same values: the DaemonSet rolled once.
    const after = (await apps.readNamespacedDaemonSet(calico)).metadata?.generation ?? 0;
    expect(after - generation).toBe(1);
    const deletes = report.actions.filter((a) => a.kind === 'pod.forceDelete');
    const stuck = /^(\d+) stuck/.exec(report.steps[0]?.summary ?? '')?.[1];
    expect(deletes).toHaveLength(Number(stuck));
    expect(new Set(deletes.map((a) => a.target)).size).toBe(deletes.length);
    expect(deletes.filter((a) => a.result !== 'ok')).toEqual([]);
  });

  it('recovers the reachable nodes when one is down, and a retry touches only that node', async () => {
    await broken();
    await bed.stopNode('node-2');
    const since = Date.now();

    const report = await (
      await start(seedRunbook())
    )
      .result()
      .finally(() => bed.startNode('node-2'));

    expect(report.outcome).toBe('partial');
    expect(report.failedNodes).toEqual([
      expect.objectContaining({
        node: 'node-2',
        step: 'clocks',
        error: expect.stringMatching(/unreachable/),
      }),
    ]);
    expect(ledgerSince('node-1', since).filter((c) => SYNC_CMD.test(c))).toHaveLength(1);
    expect(ledgerSince('node-3', since).filter((c) => SYNC_CMD.test(c))).toHaveLength(1);

    const logins = { 'node-1': sshLogins('node-1'), 'node-3': sshLogins('node-3') };
    const retried = await kubemend(
      [
        'retry',
        WORKFLOW_ID,
        '--kubeconfig',
        bed.kubeconfigPath,
        '--inventory',
        bed.inventoryPath,
        '--report',
        join(bed.dir, 'retry.json'),
      ],
      { TEMPORAL_ADDRESS: temporal.address },
    );

    expect(retried.code).toBe(0);
    const retry = JSON.parse(readFileSync(join(bed.dir, 'retry.json'), 'utf8')) as RunReport;
    expect(retry.outcome).toBe('recovered');
    expect(retry.retryOf).toBe(`${WORKFLOW_ID}/${report.runId}`);
    expect(retry.actions.filter((a) => a.kind === 'node.syncClock').map((a) => a.target)).toEqual([
      'node/node-2',
    ]);
    expect({ 'node-1': sshLogins('node-1'), 'node-3': sshLogins('node-3') }).toEqual(logins);
    bed.state.phase = 'ready';
  });

  it('waits at an approval gate across worker and server restarts; a rejected run stops', async () => {
    const gated = seedRunbook((rb) => (rb.spec.limits.maxPodDeletes = 2));
    await broken();
    const handle = await start(gated);

    const paused = await waitFor(handle, (r) => r.approvals.length > 0);
    expect(paused.approvals[0]).toMatchObject({
      step: 'evict',
      message: expect.stringMatching(/maxPodDeletes/),
    });
    await worker.kill9();
    await temporal.crashAndRestart();
    await newWorker();
    const approved = await kubemend(
      ['approve', WORKFLOW_ID, '--reason', 'checked the pod list', '--by', 'sre-on-call'],
      {
        TEMPORAL_ADDRESS: temporal.address,
      },
    );
    const report = await handle.result();

    expect(approved.code).toBe(0);
    expect(report.outcome).toBe('recovered');
    expect(report.approvals[0]).toMatchObject({
      decision: 'approved',
      by: 'sre-on-call',
      reason: 'checked the pod list',
    });
    expect(report.actions.filter((a) => a.kind === 'pod.forceDelete').length).toBeGreaterThan(2);

    bed.state.phase = 'ready';
    await broken();
    const second = await start(gated);
    await waitFor(second, (r) => r.approvals.length > 0);
    const rejectedAt = Date.now();
    const rejected = await kubemend(
      ['reject', WORKFLOW_ID, '--reason', 'not during the change freeze', '--by', 'sre-on-call'],
      {
        TEMPORAL_ADDRESS: temporal.address,
      },
    );
    const stopped = await second.result();

    expect(rejected.code).toBe(0);
    expect(stopped.outcome).toBe('needs-human');
    expect(stopped.approvals[0]).toMatchObject({ decision: 'rejected', by: 'sre-on-call' });
    expect(
      stopped.actions.filter(
        (a) => a.kind === 'pod.forceDelete' || a.kind === 'daemonset.rolloutRestart',
      ),
    ).toEqual([]);
    expect(stopped.steps.filter((s) => s.status === 'pending').map((s) => s.id)).toEqual([
      'calico',
      'calico-ready',
      'verify',
    ]);
    expect(
      bed.readAudit({ user: 'kubemend', verbs: 'mutating', since: new Date(rejectedAt) }),
    ).toEqual([]);
  });

  it('cancels a run cleanly and reports what was not done', async () => {
    const gated = seedRunbook((rb) => (rb.spec.limits.maxPodDeletes = 2));
    await broken();
    const handle = await start(gated);
    await waitFor(handle, (r) => r.approvals.length > 0);

    const cancelled = await kubemend(['cancel', WORKFLOW_ID], {
      TEMPORAL_ADDRESS: temporal.address,
    });
    const report = await handle.result();

    expect(cancelled.code).toBe(0);
    expect(cancelled.stdout).toContain('CANCELLED');
    expect(report.outcome).toBe('cancelled');
    expect(report.steps.filter((s) => s.status === 'done').map((s) => s.id)).toEqual([
      'diagnose',
      'clocks',
      'sync',
      'kubelet',
    ]);
    expect(report.steps.filter((s) => s.status === 'pending').map((s) => s.id)).toEqual([
      'calico',
      'calico-ready',
      'verify',
    ]);
    expect(report.actions.filter((a) => a.kind === 'pod.forceDelete')).toEqual([]);

    // A fresh run finishes the job and leaves the finished node work alone.
    const since = Date.now();
    const rerun = await (await start(seedRunbook())).result();
    bed.state.phase = 'ready';

    expect(rerun.outcome).toBe('recovered');
    expect(rerun.actions.filter((a) => a.kind.startsWith('node.'))).toEqual([]);
    expect(rerun.actions.filter((a) => a.kind === 'pod.forceDelete').length).toBeGreaterThan(2);
    for (const node of bed.nodes.map((n) => n.name)) expect(ledgerSince(node, since)).toEqual([]);
  });

  it('treats an approval that times out as a rejection: nothing after the gate runs', async () => {
    const text = [
      'apiVersion: kubemend.io/v1alpha1',
      'kind: Runbook',
      'metadata: { name: gate-timeout }',
      'spec:',
      '  allowlist: [kube-system]',
      '  steps:',
      '    - { id: confirm, type: approval, timeout: 2s, with: { message: proceed? } }',
      '    - { id: clocks, type: node.measureClock }',
    ].join('\n');
    const runbook = loadRunbook(text, 'gate-timeout.yaml');

    const report = await client.workflow.execute(runRunbook, {
      workflowId: workflowIdFor('gate-timeout', 'seed'),
      taskQueue: taskQueueFor('seed'),
      args: [{ runbook, cluster: 'seed' }],
    });

    expect(report.outcome).toBe('needs-human');
    expect(report.approvals).toEqual([
      expect.objectContaining({ step: 'confirm', decision: 'timed-out' }),
    ]);
    expect(report.steps.map((s) => [s.id, s.status])).toEqual([
      ['confirm', 'stopped'],
      ['clocks', 'pending'],
    ]);
  });

  it('cancels a run mid-sync: the hung remote command is killed and nothing after it runs', async () => {
    await broken();
    const nodeDir = bed.state.nodes.find((n) => n.name === 'node-1')?.dir ?? '';
    const pidFile = join(nodeDir, 'ntp-wait.pid');
    rmSync(pidFile, { force: true });
    bed.setNtpDelay('node-1', 120); // node-1's chronyc waits on a silent NTP source
    const since = Date.now();
    const handle = await start(seedRunbook());
    let report: RunReport;
    let pid = 0;
    try {
      await waitFor(handle, (r) => {
        const nodes = r.steps.find((s) => s.id === 'sync')?.nodes ?? {};
        return (
          nodes['node-1'] === 'running' &&
          nodes['node-2'] === 'done' &&
          nodes['node-3'] === 'done' &&
          existsSync(pidFile)
        );
      });
      pid = Number(readFileSync(pidFile, 'utf8'));
      expect(alive(pid)).toBe(true);

      const cancelled = await kubemend(['cancel', WORKFLOW_ID], {
        TEMPORAL_ADDRESS: temporal.address,
      });
      expect(cancelled.code).toBe(0);
      report = await handle.result();
      await eventually('the hung chronyc on node-1 to be killed', () =>
        Promise.resolve(!alive(pid)),
      );
    } finally {
      bed.setNtpDelay('node-1', 0);
    }

    // Killed by the cancel, well before the node's own 30 s `timeout` would have ended it.
    expect(Date.now() - statSync(pidFile).mtimeMs).toBeLessThan(30_000);
    expect(report.outcome).toBe('cancelled');
    expect(ledgerSince('node-1', since).filter((c) => SYNC_CMD.test(c))).toEqual([]);
    expect(bed.clockOffset('node-1')).toBeLessThan(-3600);
    expect(
      report.actions
        .filter((a) => a.kind === 'node.syncClock')
        .map((a) => a.target)
        .sort(),
    ).toEqual(['node/node-2', 'node/node-3']);
    expect(report.steps.map((s) => [s.id, s.status])).toEqual([
      ['diagnose', 'done'],
      ['clocks', 'done'],
      ['sync', 'stopped'],
      ['kubelet', 'pending'],
      ['evict', 'pending'],
      ['calico', 'pending'],
      ['calico-ready', 'pending'],
      ['verify', 'pending'],
    ]);
    expect(report.steps.find((s) => s.id === 'sync')?.nodes).toEqual({
      'node-1': 'cancelled',
      'node-2': 'done',
      'node-3': 'done',
    });
    // Half-recovered (node-1 skewed, CNI tokens expired): a test after this one must start a bed.
  });
});

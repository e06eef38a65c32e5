/**
 * `runRunbook`: interprets any validated runbook as a durable workflow. Each step's side effects
 * run as activities; Temporal's history is the ledger, so a crashed worker or server resumes
 * after the last finished activity. Per-node steps fan out with bounded parallelism and record
 * each node's outcome, so one dead node never sinks the others.
 */
import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  isCancellation,
  log,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { ActivityOptions } from '@temporalio/workflow';
import type { KubemendActivities } from '../activities/index.js';
import { durationMs } from '../common/runbook.js';
import type { Runbook, Step } from '../common/runbook.js';
import type { PodRef, RunInput, RunReport, StepReport, StepResult } from '../common/types.js';
import { NON_RETRYABLE_ERRORS } from '../common/errors.js';
import { progressQuery } from './messages.js';
import { runPool } from './pool.js';
import { RunState } from './run-state.js';

const HEARTBEAT_TIMEOUT = '10s';

/** Loading the runbook and the cluster's node list: quick, retried a little. */
const setup = proxyActivities<KubemendActivities>({
  startToCloseTimeout: '30s',
  retry: { maximumAttempts: 5, nonRetryableErrorTypes: NON_RETRYABLE_ERRORS },
});

/** Runs a runbook against a cluster and returns the run report. */
export async function runRunbook(input: RunInput): Promise<RunReport> {
  const run = new RunState(input, await resolveRunbook(input));
  setHandler(progressQuery, () => run.report);
  run.nodes = await setup.listNodes({ cluster: input.cluster });
  if (input.onlyNodes) run.nodes = run.nodes.filter((n) => input.onlyNodes?.includes(n));
  log.info('Run started', { runbook: run.runbook.metadata.name, nodes: run.nodes });

  try {
    for (const step of run.runbook.spec.steps) {
      const stop = await runStep(run, step);
      if (stop) break;
    }
  } catch (err) {
    if (!isCancellation(err)) throw err;
    run.stopReason = { outcome: 'cancelled', why: 'cancelled on request' };
    log.warn('Run cancelled; steps not started are left undone', {});
  }
  return run.finish();
}

async function resolveRunbook(input: RunInput): Promise<Runbook> {
  if (typeof input.runbook !== 'string') return input.runbook;
  return setup.loadRunbook({ name: input.runbook, params: input.params ?? {} });
}

/** Runs one step; returns true when the run must stop here. */
async function runStep(run: RunState, step: Step): Promise<boolean> {
  const report = run.stepReport(step.id);
  if (step.when && !run.holds(step.when)) {
    report.status = 'skipped';
    report.summary = 'condition not met';
    log.info('Step skipped: condition not met', { step: step.id });
    return false;
  }
  report.status = 'running';
  report.startedAt = new Date().toISOString();
  log.info('Step started', { step: step.id, type: step.type });
  try {
    const result = await executeStep(run, step, report);
    run.record(step, result);
    report.status = run.stopReason ? 'stopped' : 'done';
    report.summary = result.summary;
    log.info('Step finished', { step: step.id, summary: result.summary });
  } catch (err) {
    if (isCancellation(err)) {
      report.status = 'stopped';
      report.summary = 'cancelled while running';
      throw err;
    }
    report.status = 'failed';
    report.error = describeError(err);
    run.stopReason ??= verdictOnFailure(run, step, report.error);
    log.error('Step failed', { step: step.id, error: report.error });
  } finally {
    report.finishedAt = new Date().toISOString();
  }
  return run.stopReason !== undefined || tooManyNodeFailures(run);
}

function verdictOnFailure(run: RunState, step: Step, error: string): RunState['stopReason'] {
  // A verification that times out after partial node failure is explained by those nodes.
  if (step.type === 'k8s.waitPodsReady' || step.type === 'k8s.waitRollout') {
    const outcome = run.failedNodes.size > 0 ? 'partial' : 'needs-human';
    run.report.attention.push(`step ${step.id} did not converge: ${error}`);
    return { outcome, why: error };
  }
  return { outcome: 'failed', why: error };
}

function tooManyNodeFailures(run: RunState): boolean {
  const max = run.runbook.spec.limits.maxNodeFailures;
  if (run.failedNodes.size <= max) return false;
  run.stopReason = {
    outcome: 'failed',
    why: `${run.failedNodes.size} nodes failed, more than limits.maxNodeFailures (${max})`,
  };
  run.report.attention.push(run.stopReason.why);
  return true;
}

function describeError(err: unknown): string {
  // An ActivityFailure wraps the activity's own error, whose message names node, resource, why.
  if (err instanceof ActivityFailure && err.cause) return err.cause.message;
  return err instanceof Error ? err.message : String(err);
}

/**
 * Activity stubs with the step's timeout and retry policy. Long-running kinds heartbeat; their
 * own deadline (the step timeout) ends them with a clear error, the start-to-close timeout
 * below is only a backstop for a stuck attempt.
 */
function activitiesFor(
  step: Step,
  longWait = false,
  cancellationType?: ActivityCancellationType,
): KubemendActivities {
  const timeout = durationMs(step.timeout);
  const options: ActivityOptions = {
    cancellationType,
    startToCloseTimeout: longWait ? timeout + 30_000 : timeout,
    // Every activity heartbeats at least every 2 s: a dead worker is noticed within this.
    heartbeatTimeout: HEARTBEAT_TIMEOUT,
    retry: {
      maximumAttempts: step.retry.maximumAttempts,
      initialInterval: durationMs(step.retry.initialInterval),
      maximumInterval: durationMs(step.retry.maximumInterval),
      nonRetryableErrorTypes: NON_RETRYABLE_ERRORS,
    },
  };
  return proxyActivities<KubemendActivities>(options);
}

async function executeStep(run: RunState, step: Step, report: StepReport): Promise<StepResult> {
  const cluster = run.report.cluster;
  const base = { cluster, step: step.id };
  switch (step.type) {
    case 'node.measureClock':
    case 'node.syncClock':
    case 'node.restartUnit':
      return runNodeStep(run, step, report);
    case 'approval':
      return askApproval(run, step);
    case 'k8s.findStuckPods':
      return activitiesFor(step).findStuckPods({
        ...base,
        namespaces: step.with.namespaces,
        allowlist: run.runbook.spec.allowlist,
        evidence: step.with.evidence,
        minStuckForMs: durationMs(step.with.minStuckFor),
      });
    case 'k8s.forceDeletePods':
      return forceDelete(run, step, base);
    case 'k8s.rolloutRestart':
      return activitiesFor(step).rolloutRestartDaemonSet({
        ...base,
        namespace: step.with.namespace,
        name: step.with.name,
        token: `${workflowInfo().workflowId}/${workflowInfo().runId}/${step.id}`,
        restartedAt: report.startedAt as string,
      });
    case 'k8s.waitRollout':
      return activitiesFor(step, true).waitDaemonSetRollout({
        ...base,
        namespace: step.with.namespace,
        name: step.with.name,
        timeoutMs: durationMs(step.timeout),
        ignoreNodes: [...run.failedNodes],
      });
    case 'k8s.waitPodsReady':
      return activitiesFor(step, true).waitPodsReady({
        ...base,
        namespaces: step.with.namespaces,
        ignoreNodes: [...run.failedNodes],
        timeoutMs: durationMs(step.timeout),
      });
  }
}

async function askApproval(
  run: RunState,
  step: Extract<Step, { type: 'approval' }>,
): Promise<StepResult> {
  if (await run.gate.ask(step.id, step.with.message, durationMs(step.timeout))) {
    const a = run.report.approvals.at(-1);
    return emptyResult(`approved by ${a?.by}: ${a?.reason}`);
  }
  stopAtGate(run, `step ${step.id} was not approved`);
  return emptyResult('not approved; run stopped');
}

async function forceDelete(
  run: RunState,
  step: Extract<Step, { type: 'k8s.forceDeletePods' }>,
  base: { cluster: string; step: string },
): Promise<StepResult> {
  const source = run.runbook.spec.steps.find((s) => s.id === step.with.podsFrom);
  if (source?.type !== 'k8s.findStuckPods') {
    throw ApplicationFailure.nonRetryable(`step ${step.with.podsFrom} is not k8s.findStuckPods`);
  }
  const pods: PodRef[] = (run.results.get(source.id)?.flagged ?? []).flatMap((key) => {
    const pod = run.results.get(source.id)?.pods?.find((p) => `${p.namespace}/${p.name}` === key);
    return pod ? [pod] : [];
  });
  const limit = run.runbook.spec.limits.maxPodDeletes;
  if (pods.length > limit) {
    const why = `${pods.length} pods to force-delete, more than limits.maxPodDeletes (${limit})`;
    if (!(await approvedBeyondLimit(run, step.id, why))) return emptyResult(`stopped: ${why}`);
  }
  return activitiesFor(step, true).forceDeletePods({
    ...base,
    pods,
    evidence: source.with.evidence,
    minStuckForMs: durationMs(source.with.minStuckFor),
    batchSize: step.with.batchSize,
  });
}

/** Crossing a blast-radius limit pauses for a human; anything but approval stops the run. */
async function approvedBeyondLimit(run: RunState, stepId: string, why: string): Promise<boolean> {
  const timeout = durationMs(run.runbook.spec.limits.approvalTimeout);
  if (await run.gate.ask(stepId, `approve going beyond a limit: ${why}`, timeout)) return true;
  stopAtGate(run, why);
  return false;
}

/** Records why a gate stopped the run: nothing after it is done. */
function stopAtGate(run: RunState, what: string): void {
  const a = run.report.approvals.at(-1);
  const who =
    a?.decision === 'timed-out' ? 'nobody decided in time' : `rejected by ${a?.by}: ${a?.reason}`;
  run.stopReason = { outcome: 'needs-human', why: `${what} (${who})` };
  run.report.attention.push(run.stopReason.why);
}

type NodeStep = Extract<Step, { type: `node.${string}` }>;

async function runNodeStep(run: RunState, step: NodeStep, report: StepReport): Promise<StepResult> {
  const nodes = run.selectNodes(step.nodes);
  const limit = run.runbook.spec.limits.maxNodes;
  if (nodes.length > limit) {
    const why = `step ${step.id} would touch ${nodes.length} nodes, more than limits.maxNodes (${limit})`;
    if (!(await approvedBeyondLimit(run, step.id, why))) return emptyResult(`stopped: ${why}`);
  }
  report.nodes = Object.fromEntries(nodes.map((n) => [n, 'pending' as const]));
  const acts = activitiesFor(step, false, ActivityCancellationType.WAIT_CANCELLATION_COMPLETED);
  const notBefore = Date.parse(report.startedAt as string);
  const finished: StepResult[] = [];
  const work = async (node: string): Promise<StepResult> => {
    (report.nodes as Record<string, string>)[node] = 'running';
    const target = { cluster: run.report.cluster, node, step: step.id };
    try {
      const result = await nodeActivity(acts, step, target, notBefore);
      (report.nodes as Record<string, string>)[node] = 'done';
      finished.push(result);
      return result;
    } catch (err) {
      if (isCancellation(err)) {
        (report.nodes as Record<string, string>)[node] = 'cancelled';
        throw err;
      }
      const error = describeError(err);
      (report.nodes as Record<string, string>)[node] = 'failed';
      log.warn('Node step failed', { step: step.id, node, error });
      return { ...emptyResult(''), failed: [{ target: node, error }] };
    }
  };
  try {
    const results = await runPool(nodes, run.runbook.spec.limits.nodeParallelism, work);
    return mergeResults(results, step.id, nodes.length);
  } catch (err) {
    // Cancelled mid-step: what the finished nodes did still belongs in the report.
    if (isCancellation(err)) run.record(step, mergeResults(finished, step.id, nodes.length));
    throw err;
  }
}

function nodeActivity(
  acts: KubemendActivities,
  step: NodeStep,
  target: { cluster: string; node: string; step: string },
  notBefore: number,
): Promise<StepResult> {
  switch (step.type) {
    case 'node.measureClock':
      return acts.measureClock({ ...target, maxSkewMs: durationMs(step.with.maxSkew) });
    case 'node.syncClock':
      return acts.syncClock({
        ...target,
        maxSkewMs: durationMs(step.with.maxSkew),
        ntpServer: step.with.ntpServer,
      });
    case 'node.restartUnit':
      return acts.restartUnit({ ...target, unit: step.with.unit, notBefore });
  }
}

function mergeResults(results: StepResult[], stepId: string, total: number): StepResult {
  const merged = emptyResult('');
  for (const r of results) {
    merged.flagged.push(...r.flagged);
    merged.changed.push(...r.changed);
    merged.actions.push(...r.actions);
    merged.failed.push(...r.failed);
    merged.attention.push(...r.attention);
  }
  const parts = [
    `${total} nodes`,
    `${merged.flagged.length} flagged`,
    `${merged.changed.length} changed`,
  ];
  if (merged.failed.length > 0) parts.push(`${merged.failed.length} failed`);
  merged.summary = parts.join(', ');
  log.debug('Node step merged', { step: stepId, summary: merged.summary });
  return merged;
}

function emptyResult(summary: string): StepResult {
  return { flagged: [], changed: [], actions: [], failed: [], attention: [], summary };
}

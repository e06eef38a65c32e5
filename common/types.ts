/**
 * Data that crosses the workflow/activity boundary: run input, step results, the run report.
 * Everything here is plain JSON; no secrets ever appear in it.
 */
import type { Runbook, StepType } from './runbook.js';

/** The task queue a cluster's worker polls; one queue per cluster keeps clusters apart. */
export function taskQueueFor(cluster: string): string {
  return `kubemend-${cluster}`;
}

/** One open run per runbook and cluster: later triggers attach instead of forking. */
export function workflowIdFor(runbook: string, cluster: string): string {
  return `${runbook}/${cluster}`;
}

/** How a run was started, for the report. */
export interface Trigger {
  via: 'cli' | 'webhook' | 'schedule' | 'ui';
  by?: string;
  detail?: string;
}

/** Input of the `runRunbook` workflow. Either a parsed runbook or the name of a file in runbooks/. */
export interface RunInput {
  runbook: Runbook | string;
  /** Cluster name; the worker resolves its kubeconfig and SSH inventory by this name. */
  cluster: string;
  params?: Record<string, unknown>;
  trigger?: Trigger;
  /** Restrict node steps to these nodes (used by `kubemend retry`). */
  onlyNodes?: string[];
  /** The run this one retries, for the report. */
  retryOf?: string;
}

export type Outcome = 'recovered' | 'partial' | 'failed' | 'needs-human' | 'cancelled';

/** A human's answer at an approval gate (`kubemend approve|reject`, or the Temporal UI). */
export interface Decision {
  by: string;
  reason: string;
}

/** One approval gate of a run, as the report records it. */
export interface ApprovalRecord {
  step: string;
  message: string;
  requestedAt: string;
  decision?: 'approved' | 'rejected' | 'timed-out';
  by?: string;
  reason?: string;
  decidedAt?: string;
}

/** One side effect kubemend caused (or tried to), as it appears in the report. */
export interface Action {
  kind:
    | 'node.syncClock'
    | 'node.restartUnit'
    | 'pod.forceDelete'
    | 'pod.delete'
    | 'daemonset.rolloutRestart';
  /** `node/<name>`, `pod/<ns>/<name>`, `daemonset/<ns>/<name>`. */
  target: string;
  at: string;
  result: 'ok' | 'failed' | 'skipped';
  step: string;
  details?: Record<string, unknown>;
}

/** A pod the diagnosis found, stuck or deliberately left alone. */
export interface PodRef {
  namespace: string;
  name: string;
  uid: string;
  node?: string;
  state: 'terminating' | 'creating';
  reason: string;
}

/** What a step returns to the interpreter. */
export interface StepResult {
  /** Targets that need action (node names or `ns/pod`). */
  flagged: string[];
  /** Targets this step changed. */
  changed: string[];
  actions: Action[];
  /** Targets that failed, with why: these decide `partial`. */
  failed: { target: string; error: string }[];
  /** Findings a human must look at; any of them makes the outcome at best `needs-human`. */
  attention: string[];
  summary: string;
  pods?: PodRef[];
  data?: Record<string, unknown>;
}

/** `stopped`: the run stopped at this step (a limit, a rejected or unanswered approval, a cancel). */
export type StepStatus = 'pending' | 'running' | 'done' | 'skipped' | 'failed' | 'stopped';

export interface StepReport {
  id: string;
  type: StepType;
  status: StepStatus;
  startedAt?: string;
  finishedAt?: string;
  summary?: string;
  /** Per-node status of a node step. */
  nodes?: Record<string, 'pending' | 'running' | 'done' | 'failed' | 'skipped' | 'cancelled'>;
  error?: string;
}

/** The live `progress` query and, once finished, the run's result. */
export interface RunReport {
  runbook: string;
  cluster: string;
  workflowId: string;
  runId: string;
  trigger?: Trigger;
  retryOf?: string;
  status: 'running' | 'finished';
  outcome?: Outcome;
  startedAt: string;
  finishedAt?: string;
  wallTimeMs?: number;
  steps: StepReport[];
  actions: Action[];
  failedNodes: { node: string; step: string; error: string }[];
  attention: string[];
  diagnosis?: PodRef[];
  /** Every approval gate of the run; the last one is pending while it has no decision. */
  approvals: ApprovalRecord[];
}

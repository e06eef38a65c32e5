/**
 * The state of one run: step results, failed nodes, the live report, the approval gate, and the
 * rules that turn them into conditions, node selections and the final outcome.
 */
import { log, workflowInfo } from '@temporalio/workflow';
import type { Condition, NodeSelector, Runbook, Step } from '../common/runbook.js';
import type { Outcome, RunInput, RunReport, StepReport, StepResult } from '../common/types.js';
import { ApprovalGate } from './approval.js';

/** Mutable state of one run; `report` is what the progress query returns. */
export class RunState {
  readonly results = new Map<string, StepResult>();
  readonly failedNodes = new Set<string>();
  nodes: string[] = [];
  stopReason?: { outcome: Outcome; why: string };
  readonly report: RunReport;
  readonly gate: ApprovalGate;

  constructor(
    input: RunInput,
    readonly runbook: Runbook,
  ) {
    const info = workflowInfo();
    this.report = {
      runbook: runbook.metadata.name,
      cluster: input.cluster,
      workflowId: info.workflowId,
      runId: info.runId,
      trigger: input.trigger,
      retryOf: input.retryOf,
      status: 'running',
      startedAt: new Date(info.startTime).toISOString(),
      steps: runbook.spec.steps.map((s) => ({ id: s.id, type: s.type, status: 'pending' })),
      actions: [],
      failedNodes: [],
      attention: [],
      approvals: [],
    };
    this.gate = new ApprovalGate(this.report);
  }

  stepReport(id: string): StepReport {
    return this.report.steps.find((s) => s.id === id) as StepReport;
  }

  // TODO(scale): the report keeps one action per side effect in history; runs bounded by
  // maxPodDeletes stay small, but an approved run over thousands of pods should continue-as-new.
  record(step: Step, result: StepResult): void {
    this.results.set(step.id, result);
    this.report.actions.push(...result.actions);
    this.report.attention.push(...result.attention);
    for (const f of result.failed) {
      if (step.type.startsWith('node.')) this.failedNodes.add(f.target);
      this.report.failedNodes.push({ node: f.target, step: step.id, error: f.error });
    }
    if (result.pods) this.report.diagnosis = result.pods;
  }

  holds(c: Condition): boolean {
    if ('flagged' in c) return (this.results.get(c.flagged)?.flagged.length ?? 0) > 0;
    if ('changed' in c) return (this.results.get(c.changed)?.changed.length ?? 0) > 0;
    if ('any' in c) return c.any.some((x) => this.holds(x));
    return c.all.every((x) => this.holds(x));
  }

  selectNodes(selector: NodeSelector): string[] {
    const healthy = this.nodes.filter((n) => !this.failedNodes.has(n));
    if (selector === 'all') return healthy;
    const from =
      'flaggedBy' in selector
        ? this.results.get(selector.flaggedBy)?.flagged
        : this.results.get(selector.changedBy)?.changed;
    return healthy.filter((n) => from?.includes(n));
  }

  finish(): RunReport {
    const r = this.report;
    r.status = 'finished';
    r.finishedAt = new Date().toISOString();
    r.wallTimeMs = Date.now() - workflowInfo().startTime.getTime();
    r.outcome = this.outcome();
    log.info('Run finished', {
      outcome: r.outcome,
      actions: r.actions.length,
      wallTimeMs: r.wallTimeMs,
    });
    return r;
  }

  private outcome(): Outcome {
    if (this.stopReason) return this.stopReason.outcome;
    if (this.failedNodes.size > 0) return 'partial';
    if (this.report.attention.length > 0) return 'needs-human';
    return 'recovered';
  }
}

/**
 * The approval gate: a run pauses until a human approves or rejects, or the gate times out,
 * which counts as a rejection (the safe choice: stop, do nothing more). The decision is workflow
 * state, so it survives worker and server restarts like everything else in the history.
 */
import { condition, log, setHandler } from '@temporalio/workflow';
import type { ApprovalRecord, Decision, RunReport } from '../common/types.js';
import { approveSignal, approveUpdate, rejectSignal, rejectUpdate } from './messages.js';

export class ApprovalGate {
  private open?: ApprovalRecord;

  constructor(private readonly report: RunReport) {
    const validator = (d: Decision): void => this.validate(d);
    setHandler(approveUpdate, (d) => this.decide('approved', d), { validator });
    setHandler(rejectUpdate, (d) => this.decide('rejected', d), { validator });
    setHandler(approveSignal, (d) => this.signalled('approved', d));
    setHandler(rejectSignal, (d) => this.signalled('rejected', d));
  }

  /** Waits for a decision; true only when approved in time. */
  async ask(step: string, message: string, timeoutMs: number): Promise<boolean> {
    const record: ApprovalRecord = { step, message, requestedAt: new Date().toISOString() };
    this.open = record;
    this.report.approvals.push(record);
    log.warn('Waiting for approval', { step, message, timeoutMs });
    const decided = await condition(() => record.decision !== undefined, timeoutMs);
    this.open = undefined;
    if (!decided) {
      record.decision = 'timed-out';
      record.decidedAt = new Date().toISOString();
      log.warn('Approval timed out; stopping as if rejected', { step });
    }
    return record.decision === 'approved';
  }

  private validate(d: Decision): void {
    if (!this.open) throw new Error('this run is not waiting for an approval');
    if (!d?.by?.trim()) throw new Error('a decision needs "by": who decides');
    if (!d.reason?.trim()) throw new Error('a decision needs "reason": why');
  }

  private decide(decision: 'approved' | 'rejected', d: Decision): ApprovalRecord {
    const record = this.open as ApprovalRecord;
    Object.assign(record, {
      decision,
      by: d.by,
      reason: d.reason,
      decidedAt: new Date().toISOString(),
    });
    log.info('Approval decided', { step: record.step, decision, by: d.by, reason: d.reason });
    return record;
  }

  private signalled(decision: 'approved' | 'rejected', d: Decision): void {
    try {
      this.validate(d);
    } catch (err) {
      log.warn('Ignoring decision signal', { decision, error: (err as Error).message });
      return;
    }
    this.decide(decision, d);
  }
}

/**
 * Human output of a run: live progress lines while it runs and the final report.
 */
import type { RunReport, StepReport } from '../common/types.js';

/** Lines describing what changed between two progress snapshots. */
export function progressLines(prev: RunReport | undefined, next: RunReport): string[] {
  const lines: string[] = [];
  for (const step of next.steps) {
    const before = prev?.steps.find((s) => s.id === step.id);
    if (before?.status === step.status && sameNodes(before, step)) continue;
    if (step.status === 'pending') continue;
    lines.push(`  ${icon(step.status)} ${step.id.padEnd(14)} ${step.status}${describe(step)}`);
  }
  next.approvals.forEach((a, i) => {
    const before = prev?.approvals[i];
    if (!before) {
      lines.push(`  ? waiting for approval at ${a.step}: ${a.message}`);
      lines.push(`    kubemend approve ${next.workflowId} --reason '...'  (or reject)`);
    }
    if (a.decision && !before?.decision) {
      lines.push(`  ? ${a.step}: ${a.decision}${a.by ? ` by ${a.by}: ${a.reason}` : ''}`);
    }
  });
  return lines;
}

function sameNodes(a: StepReport, b: StepReport): boolean {
  return JSON.stringify(a.nodes ?? {}) === JSON.stringify(b.nodes ?? {});
}

function describe(step: StepReport): string {
  if (step.status === 'running' && step.nodes) {
    const counts: Record<string, number> = {};
    for (const s of Object.values(step.nodes)) counts[s] = (counts[s] ?? 0) + 1;
    return ` (${Object.entries(counts)
      .map(([k, v]) => `${v} ${k}`)
      .join(', ')})`;
  }
  if (step.status === 'failed') return `: ${step.error ?? ''}`;
  return step.summary ? `: ${step.summary}` : '';
}

function icon(status: StepReport['status']): string {
  return { pending: '.', running: '>', done: '+', skipped: '-', failed: '!', stopped: '|' }[status];
}

/** The final report, as an operator reads it. */
export function formatReport(r: RunReport): string {
  const out: string[] = [];
  out.push(`kubemend: ${r.runbook} on ${r.cluster}: ${(r.outcome ?? r.status).toUpperCase()}`);
  out.push(
    `  run ${r.workflowId} (${r.runId}), wall time ${((r.wallTimeMs ?? 0) / 1000).toFixed(1)}s`,
  );
  if (r.retryOf) out.push(`  retry of ${r.retryOf}`);
  out.push('steps:');
  for (const s of r.steps)
    out.push(`  ${icon(s.status)} ${s.id.padEnd(14)} ${s.status}${describe(s)}`);
  out.push(`actions (${r.actions.length}):`);
  for (const a of r.actions) {
    const d = a.details ?? {};
    const extra =
      a.kind === 'node.syncClock'
        ? ` offset ${fmtMs(d.offsetBeforeMs)} -> ${fmtMs(d.offsetAfterMs)} via ${String(d.method)}`
        : a.kind === 'node.restartUnit'
          ? ` ${String(d.unit)}`
          : typeof d.why === 'string'
            ? ` (${d.why})`
            : '';
    out.push(`  ${a.result.padEnd(7)} ${a.kind.padEnd(24)} ${a.target}${extra}`);
  }
  if (r.failedNodes.length > 0) {
    out.push('failed nodes:');
    for (const f of r.failedNodes) out.push(`  ${f.node} in step ${f.step}: ${f.error}`);
  }
  for (const a of r.approvals) {
    const who = a.by ? ` by ${a.by} at ${a.decidedAt}: ${a.reason}` : '';
    out.push(`approval at ${a.step}: ${a.decision ?? 'pending'}${who}`);
  }
  if (r.attention.length > 0) {
    out.push('needs attention:');
    for (const a of r.attention) out.push(`  - ${a}`);
  }
  return out.join('\n');
}

function fmtMs(v: unknown): string {
  const ms = Number(v);
  if (!Number.isFinite(ms)) return '?';
  return Math.abs(ms) >= 3_600_000
    ? `${(ms / 3_600_000).toFixed(1)}h`
    : `${(ms / 1000).toFixed(3)}s`;
}

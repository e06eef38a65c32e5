/**
 * Node activities over SSH: measure a node's clock offset, step its clock with the node's own
 * time-sync tool, restart a systemd unit. Each is safe to retry: it re-reads the node's state
 * first and does nothing when the work is already done, so the node's ledger never shows a
 * finished step twice.
 */
import { createHash } from 'node:crypto';
import { log } from '@temporalio/activity';
import { RemoteCommandError, UnsupportedNodeError } from '../common/errors.js';
import type { StepResult } from '../common/types.js';
import { activityContext, activitySignal } from './context.js';
import type { NodeShell } from './ssh.js';
import type { ClockReading, RestartUnitInput, SyncClockInput, TimeSyncKind } from './types.js';

// Prints the node's wall clock in ns, then which time-sync client the node uses.
const PROBE = [
  'date +%s%N',
  'if command -v chronyc >/dev/null 2>&1; then echo chrony',
  'elif systemctl is-active --quiet systemd-timesyncd 2>/dev/null; then echo systemd-timesyncd',
  'elif command -v ntpdate >/dev/null 2>&1; then echo ntpdate',
  'elif command -v timedatectl >/dev/null 2>&1; then echo systemd-timesyncd',
  'else echo unknown; fi',
].join('\n');

const ACTIVE_SINCE_SLACK_MS = 2_000;
const SYNC_TIMEOUT_SEC = 30;
const RESTART_TIMEOUT_SEC = 60;
/** `timeout -k 5` on the node ends any command at most this long after its own timeout. */
const KILL_GRACE_SEC = 10;

/** Reads the node's clock; the offset is corrected by half the command's round trip. */
export async function readClock(shell: NodeShell): Promise<ClockReading> {
  const sent = Date.now();
  const { stdout } = await shell.run(PROBE, { timeoutSec: 15, signal: activitySignal() });
  const received = Date.now();
  const [nanos, kind] = stdout.trim().split('\n');
  const remoteMs = Number(BigInt(nanos ?? '0') / 1_000_000n);
  if (!Number.isFinite(remoteMs) || remoteMs === 0) {
    throw new RemoteCommandError(shell.node.name, 'date +%s%N', 0, `unexpected output: ${stdout}`);
  }
  return {
    node: shell.node.name,
    offsetMs: remoteMs - (sent + received) / 2,
    rttMs: received - sent,
    timeSync: (kind as TimeSyncKind | undefined) ?? 'unknown',
  };
}

/** `node.measureClock`: flags the node when its clock is off by more than `maxSkewMs`. */
export async function measureClock(shell: NodeShell, maxSkewMs: number): Promise<StepResult> {
  const clock = await readClock(shell);
  const skewed = Math.abs(clock.offsetMs) > maxSkewMs;
  log.info('Node clock measured', {
    node: clock.node,
    offsetMs: Math.round(clock.offsetMs),
    skewed,
    timeSync: clock.timeSync,
  });
  return {
    flagged: skewed ? [clock.node] : [],
    changed: [],
    actions: [],
    failed: [],
    attention: [],
    summary: `offset ${formatOffset(clock.offsetMs)}`,
    data: { [clock.node]: clock },
  };
}

function syncCommand(kind: TimeSyncKind, ntpServer: string): string {
  switch (kind) {
    case 'chrony':
      return 'chronyc -a makestep';
    case 'systemd-timesyncd':
      // timesyncd steps the clock when it starts and reaches a server.
      return [
        'systemctl restart systemd-timesyncd',
        'i=0; while [ $i -lt 20 ]; do',
        '  [ "$(timedatectl show -p NTPSynchronized --value)" = yes ] && exit 0',
        '  i=$((i+1)); sleep 0.5',
        'done; echo "systemd-timesyncd did not synchronise" >&2; exit 1',
      ].join('\n');
    case 'ntpdate':
      return `ntpdate -b -u ${ntpServer}`;
    case 'unknown':
      throw new UnsupportedNodeError('no chrony, systemd-timesyncd or ntpdate on the node');
  }
}

/** `node.syncClock`: steps the clock if it is off, then proves it is within `maxSkewMs`. */
export async function syncClock(shell: NodeShell, input: SyncClockInput): Promise<StepResult> {
  const node = shell.node.name;
  const key = changeKey(node, input.step);
  const earlier = await awaitEarlierAttempt(shell, key, SYNC_TIMEOUT_SEC);
  const before = await readClock(shell);
  if (Math.abs(before.offsetMs) <= input.maxSkewMs) {
    const [offsetBeforeMs, method, at] = earlier?.split(' ') ?? [];
    if (offsetBeforeMs && method && at) {
      log.info('Node clock was stepped by an earlier attempt of this step', { node });
      const sync = { method, at, offsetBeforeMs: Number(offsetBeforeMs) };
      return syncedResult(node, input.step, sync, before.offsetMs, 'by an earlier attempt');
    }
    log.info('Node clock already in sync, nothing to do', {
      node,
      offsetMs: Math.round(before.offsetMs),
    });
    return nodeResult(node, false, `already in sync (${formatOffset(before.offsetMs)})`);
  }
  const command = syncCommand(before.timeSync, input.ntpServer);
  const sync = {
    method: before.timeSync,
    at: new Date().toISOString(),
    offsetBeforeMs: Math.round(before.offsetMs),
  };
  log.info('Stepping node clock', { node, method: sync.method, offsetMs: sync.offsetBeforeMs });
  await shell.run(command, {
    timeoutSec: SYNC_TIMEOUT_SEC,
    signal: activitySignal(),
    record: key ? { key, note: `${sync.offsetBeforeMs} ${sync.method} ${sync.at}` } : undefined,
  });
  const after = await readClock(shell);
  if (Math.abs(after.offsetMs) > input.maxSkewMs) {
    throw new RemoteCommandError(
      node,
      command,
      0,
      `clock still off by ${formatOffset(after.offsetMs)}`,
    );
  }
  log.info('Node clock synced', {
    node,
    offsetBeforeMs: sync.offsetBeforeMs,
    offsetAfterMs: Math.round(after.offsetMs),
  });
  return syncedResult(node, input.step, sync, after.offsetMs);
}

function syncedResult(
  node: string,
  step: string,
  sync: { method: string; at: string; offsetBeforeMs: number },
  offsetAfterMs: number,
  by?: string,
): StepResult {
  const summary = `${formatOffset(sync.offsetBeforeMs)} -> ${formatOffset(offsetAfterMs)}`;
  const result = nodeResult(node, true, by ? `${summary} (${by})` : summary);
  result.actions.push({
    kind: 'node.syncClock',
    target: `node/${node}`,
    at: sync.at,
    result: 'ok',
    step,
    details: {
      method: sync.method,
      offsetBeforeMs: sync.offsetBeforeMs,
      offsetAfterMs: Math.round(offsetAfterMs),
      ...(by && { note: `finished ${by}` }),
    },
  });
  return result;
}

/**
 * `node.restartUnit`: restarts a unit unless it already (re)entered `active` after the step
 * began, which means an earlier attempt of this same step restarted it.
 */
export async function restartUnit(shell: NodeShell, input: RestartUnitInput): Promise<StepResult> {
  const node = shell.node.name;
  const unit = input.unit;
  const key = changeKey(node, input.step);
  const earlier = await awaitEarlierAttempt(shell, key, RESTART_TIMEOUT_SEC);
  const since = await activeSince(shell, unit);
  // systemd reports whole seconds and the offset estimate is approximate: allow that much slack.
  if (since !== undefined && since >= input.notBefore - ACTIVE_SINCE_SLACK_MS) {
    if (earlier) {
      log.info('Unit was restarted by an earlier attempt of this step', { node, unit });
      return restartedResult(node, input.step, unit, earlier, 'by an earlier attempt');
    }
    log.info('Unit already restarted by this step, nothing to do', { node, unit });
    return nodeResult(node, false, `${unit} already restarted`);
  }
  const at = new Date().toISOString();
  log.info('Restarting unit', { node, unit });
  await shell.run(`systemctl restart ${unit} && systemctl is-active ${unit}`, {
    timeoutSec: RESTART_TIMEOUT_SEC,
    signal: activitySignal(),
    record: key ? { key, note: at } : undefined,
  });
  return restartedResult(node, input.step, unit, at);
}

function restartedResult(
  node: string,
  step: string,
  unit: string,
  at: string,
  by?: string,
): StepResult {
  const result = nodeResult(node, true, by ? `${unit} restarted (${by})` : `${unit} restarted`);
  result.actions.push({
    kind: 'node.restartUnit',
    target: `node/${node}`,
    at,
    result: 'ok',
    step,
    details: { unit, ...(by && { note: `finished ${by}` }) },
  });
  return result;
}

/**
 * The key under which this run's change to `node` at `step` is noted on the node; undefined
 * outside an activity.
 */
function changeKey(node: string, step: string): string | undefined {
  const run = activityContext()?.info.workflowExecution;
  if (!run) return undefined;
  const id = [run.workflowId, run.runId, step, node].join('\n');
  return createHash('sha256').update(id).digest('hex').slice(0, 32);
}

/**
 * On a retried attempt, waits until a command an earlier attempt started (perhaps on a worker
 * that died) has ended on the node; returns its note, so the caller re-reads the node's state
 * and reports that attempt's change instead of making it again.
 */
async function awaitEarlierAttempt(
  shell: NodeShell,
  key: string | undefined,
  commandTimeoutSec: number,
): Promise<string | undefined> {
  if (!key || activityContext()?.info.attempt === 1) return undefined;
  const note = await shell.awaitEarlier(key, commandTimeoutSec + KILL_GRACE_SEC, activitySignal());
  if (note) {
    log.info('An earlier attempt changed this node; re-reading its state', {
      node: shell.node.name,
    });
  }
  return note;
}

/** When the unit last entered `active`, on this worker's clock (ms), or undefined if inactive. */
async function activeSince(shell: NodeShell, unit: string): Promise<number | undefined> {
  const command = [
    `systemctl is-active --quiet ${unit} || { echo inactive; exit 0; }`,
    `date -d "$(systemctl show ${unit} -p ActiveEnterTimestamp --value)" +%s%3N`,
    'date +%s%3N',
  ].join('\n');
  const sent = Date.now();
  const { stdout } = await shell.run(command, { timeoutSec: 15, signal: activitySignal() });
  const [entered, nodeNow] = stdout.trim().split('\n').map(Number);
  if (entered === undefined || nodeNow === undefined || Number.isNaN(entered)) return undefined;
  const offset = nodeNow - (sent + Date.now()) / 2;
  return entered - offset;
}

function nodeResult(node: string, changed: boolean, summary: string): StepResult {
  return {
    flagged: [],
    changed: changed ? [node] : [],
    actions: [],
    failed: [],
    attention: [],
    summary,
  };
}

/** `-345600.0s` style, readable at a glance. */
export function formatOffset(ms: number): string {
  const s = ms / 1000;
  if (Math.abs(s) >= 3600) return `${(s / 3600).toFixed(1)}h`;
  return `${s.toFixed(3)}s`;
}

/**
 * Structured logs for workers: one JSON line per entry with the message, the level and the
 * attributes the code and the SDK attach (workflow id, activity type, node, namespace, pod).
 */
import { createWriteStream } from 'node:fs';
import type { Writable } from 'node:stream';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import type { LogEntry, LogLevel } from '@temporalio/worker';

// SDK metadata that is noise at 3 a.m.: the ids that matter are kept. (`namespace` stays: on
// activity lines it is the Kubernetes namespace kubemend logged, which overrides the SDK's.)
const DROP = new Set([
  'sdkComponent',
  'taskQueue',
  'workflowType',
  'activityId',
  'isLocal',
  'taskToken',
]);

/** Formats one entry as a JSON line. */
export function formatEntry(entry: LogEntry): string {
  const meta = Object.fromEntries(Object.entries(entry.meta ?? {}).filter(([k]) => !DROP.has(k)));
  const ts = new Date(Number(entry.timestampNanos / 1_000_000n)).toISOString();
  return `${JSON.stringify({ ts, level: entry.level.toLowerCase(), msg: entry.message, ...meta })}\n`;
}

let installed = false;

/**
 * Installs the process-wide Temporal runtime logger once. `sink` is stderr by default, or a
 * file path (the CLI keeps its terminal for progress and writes logs to a file).
 */
export function installLogger(level: LogLevel = 'INFO', sink?: string | Writable): void {
  if (installed) return;
  installed = true;
  const out: Writable =
    typeof sink === 'string' ? createWriteStream(sink, { flags: 'a' }) : (sink ?? process.stderr);
  const write = (entry: LogEntry): void => {
    // The workflow bundler's multi-line webpack report says nothing an operator needs.
    if (entry.message.startsWith('asset workflow-bundle')) return;
    out.write(formatEntry(entry));
  };
  Runtime.install({ logger: new DefaultLogger(level, write) });
}

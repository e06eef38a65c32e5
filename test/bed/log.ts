/**
 * Structured JSON-lines logging for the bed and the kubelet simulator: one constant message plus
 * attributes per line, never interpolated text.
 */
import { appendFileSync } from 'node:fs';

/** Log levels, lowest first. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** A structured logger. */
export interface BedLogger {
  debug(msg: string, attrs?: Record<string, unknown>): void;
  info(msg: string, attrs?: Record<string, unknown>): void;
  warn(msg: string, attrs?: Record<string, unknown>): void;
  error(msg: string, attrs?: Record<string, unknown>): void;
}

function errorAttrs(attrs: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(attrs)) out[k] = v instanceof Error ? v.message : v;
  return out;
}

/**
 * Creates a logger that appends JSON lines to `file`, or writes them to stdout when `file` is
 * undefined (the kubelet simulator, whose stdout is its log file).
 */
export function createLogger(component: string, file?: string): BedLogger {
  const write = (level: LogLevel, msg: string, attrs: Record<string, unknown> = {}): void => {
    const line = JSON.stringify({
      ts: new Date().toISOString(),
      level,
      component,
      msg,
      ...errorAttrs(attrs),
    });
    if (file) appendFileSync(file, line + '\n');
    else process.stdout.write(line + '\n');
  };
  return {
    debug: (m, a) => write('debug', m, a),
    info: (m, a) => write('info', m, a),
    warn: (m, a) => write('warn', m, a),
    error: (m, a) => write('error', m, a),
  };
}

/**
 * Process plumbing for the test bed: free ports, detached daemons with their own process group,
 * liveness checks that survive pid reuse, and tree kills.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readdirSync } from 'node:fs';
import net from 'node:net';

/** What the bed needs to (re)start a daemon; stored in bed.json. */
export interface ProcSpec {
  /** Stable name, e.g. `kube-apiserver` or `sshd:node-1`. */
  name: string;
  command: string;
  args: string[];
  /** stdout and stderr are appended here. */
  logFile: string;
  /** Extra environment on top of the caller's. */
  env?: Record<string, string>;
  /** Environment variables removed from the caller's environment. */
  unsetEnv?: string[];
  cwd?: string;
  /** Substring of /proc/<pid>/cmdline that proves a pid is still this daemon. */
  match: string;
}

/** A started daemon. */
export interface ProcRecord extends ProcSpec {
  pid: number;
  startedAt: string;
}

/**
 * Returns a TCP port that is free on `host` right now (bound to port 0, then released).
 * Another process may still grab it before use; the bed binds it within milliseconds.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts a daemon detached from the caller (own process group, stdio to its log file) so it
 * outlives a CLI and can be killed as a group.
 */
export function spawnDaemon(spec: ProcSpec): ProcRecord {
  if (!existsSync(spec.command))
    throw new Error(`${spec.name}: executable not found: ${spec.command}`);
  const env: NodeJS.ProcessEnv = { ...process.env, ...spec.env };
  for (const k of spec.unsetEnv ?? []) delete env[k];
  const out = openSync(spec.logFile, 'a');
  try {
    const child = spawn(spec.command, spec.args, {
      detached: true,
      stdio: ['ignore', out, out],
      env,
      cwd: spec.cwd,
    });
    child.on('error', () => undefined); // reported through isAlive() by the readiness wait
    child.unref();
    if (child.pid === undefined) throw new Error(`${spec.name}: spawn failed`);
    return { ...spec, pid: child.pid, startedAt: new Date().toISOString() };
  } finally {
    closeSync(out);
  }
}

function readProc(pid: number, file: string): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return undefined;
  }
}

/** State letter and parent pid from /proc/<pid>/stat, or undefined when gone. */
function procStat(pid: number): { state: string; ppid: number } | undefined {
  const stat = readProc(pid, 'stat');
  if (!stat) return undefined;
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { state: rest[0] ?? '?', ppid: Number(rest[1]) };
}

/** True if `pid` is a live (non-zombie) process whose command line contains `match`. */
export function isAlive(pid: number, match?: string): boolean {
  const st = procStat(pid);
  if (!st || st.state === 'Z' || st.state === 'X') return false;
  if (match === undefined) return true;
  return (readProc(pid, 'cmdline') ?? '').replace(/\0/g, ' ').includes(match);
}

/** All live descendants of `root` (children first seen first), from /proc. */
export function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    const st = procStat(pid);
    if (!st) continue;
    const list = children.get(st.ppid) ?? [];
    list.push(pid);
    children.set(st.ppid, list);
  }
  const out: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const next = children.get(queue.shift() as number) ?? [];
    out.push(...next);
    queue.push(...next);
  }
  return out;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** Signals the daemon's process group and every descendant (sshd sessions call setsid). */
function signalTree(pid: number, tree: number[], sig: NodeJS.Signals): void {
  signal(-pid, sig);
  signal(pid, sig);
  for (const p of tree) signal(p, sig);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Stops a daemon started by {@link spawnDaemon}: SIGTERM to its group and descendants, SIGKILL
 * after `graceMs`. A pid that no longer matches `match` (reused) is left alone.
 */
export async function killDaemon(
  rec: Pick<ProcRecord, 'pid' | 'match'>,
  graceMs = 5000,
): Promise<void> {
  if (!isAlive(rec.pid, rec.match)) return;
  const tree = descendants(rec.pid);
  signalTree(rec.pid, tree, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  const alive = (): boolean => isAlive(rec.pid) || tree.some((p) => isAlive(p));
  while (alive() && Date.now() < deadline) await sleep(50);
  if (alive()) signalTree(rec.pid, tree.concat(descendants(rec.pid)), 'SIGKILL');
  while (alive() && Date.now() < deadline + 2000) await sleep(20);
}

/** Synchronous SIGKILL of a daemon tree, for process 'exit' hooks. */
export function killDaemonSync(rec: Pick<ProcRecord, 'pid' | 'match'>): void {
  if (!isAlive(rec.pid, rec.match)) return;
  signalTree(rec.pid, descendants(rec.pid), 'SIGKILL');
}

/** Last `lines` lines of a log file, for error messages. */
export function tailFile(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** Options of {@link waitFor}. */
export interface WaitOptions {
  timeoutMs: number;
  intervalMs?: number;
  /** Checked before each attempt; a returned string aborts the wait with that message. */
  abortIf?: () => string | undefined;
}

/**
 * Polls `probe` until it returns a value other than undefined/false, and returns it. Throws
 * after the deadline with `what` and the probe's last error.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  opts: WaitOptions,
): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  let lastError: unknown;
  for (;;) {
    const abort = opts.abortIf?.();
    if (abort) throw new Error(`${what}: ${abort}`);
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const cause = lastError instanceof Error ? `: ${lastError.message}` : '';
      throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${what}${cause}`);
    }
    await sleep(opts.intervalMs ?? 250);
  }
}

/** Resolves once a TCP connection to host:port succeeds and the server sends `banner` first. */
export async function probeTcp(host: string, port: number, banner?: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    const done = (ok: boolean): void => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(2000, () => done(false));
    sock.once('error', () => done(false));
    sock.once('connect', () => {
      if (!banner) done(true);
    });
    sock.once('data', (d) => done(d.toString().startsWith(banner ?? '')));
  });
}

export { sleep };

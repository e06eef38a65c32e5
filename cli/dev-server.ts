/**
 * The embedded Temporal: the Temporal CLI's dev server, started in the background with its
 * state in a SQLite file, so a killed `kubemend run` can be resumed by the next command. It is
 * reused while alive (see `server.json` beside the database).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Connection } from '@temporalio/client';

export interface DevServer {
  address: string;
  uiUrl: string;
  pid: number;
  /** True when this process started it (and so should stop it when done). */
  started: boolean;
}

/** Where kubemend keeps local state: the embedded server's database, logs, reports. */
export function stateDir(): string {
  return process.env.KUBEMEND_HOME ?? join(homedir(), '.kubemend');
}

/** The `temporal` binary: $KUBEMEND_TEMPORAL_BIN, then the tools cache, then PATH. */
export function temporalBinary(): string {
  if (process.env.KUBEMEND_TEMPORAL_BIN) return process.env.KUBEMEND_TEMPORAL_BIN;
  const cache =
    process.env.KUBEMEND_TOOLS_BIN ??
    join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'kubemend/tools/bin');
  const cached = join(cache, 'temporal');
  return existsSync(cached) ? cached : 'temporal';
}

export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function reachable(address: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const conn = await Connection.connect({ address, connectTimeout: 2000 });
      await conn.close();
      return true;
    } catch {
      await new Promise((r) => setTimeout(r, 300));
    }
  }
  return false;
}

/** Starts the embedded dev server, or returns the one already running on this state dir. */
export async function ensureDevServer(dir = stateDir()): Promise<DevServer> {
  mkdirSync(dir, { recursive: true });
  const infoFile = join(dir, 'server.json');
  let previous: DevServer | undefined;
  if (existsSync(infoFile)) {
    previous = JSON.parse(readFileSync(infoFile, 'utf8')) as DevServer;
    if (alive(previous.pid) && (await reachable(previous.address, 5000))) {
      return { ...previous, started: false };
    }
  }
  // A restarted server keeps its address when it can, so workers and scripts reconnect to it.
  const [port, uiPort] = previous
    ? [Number(previous.address.split(':')[1]), Number(new URL(previous.uiUrl).port)]
    : [await freePort(), await freePort()];
  const log = openSync(join(dir, 'temporal.log'), 'a');
  const child = spawn(
    temporalBinary(),
    [
      'server',
      'start-dev',
      '--db-filename',
      join(dir, 'temporal.db'),
      '--ip',
      '127.0.0.1',
      '--port',
      String(port),
      '--ui-port',
      String(uiPort),
      '--namespace',
      'default',
      '--log-level',
      'warn',
      '--dynamic-config-value',
      'frontend.enableUpdateWorkflowExecution=true',
      '--dynamic-config-value',
      'frontend.enableUpdateWorkflowExecutionAsyncAccepted=true',
    ],
    { detached: true, stdio: ['ignore', log, log] },
  );
  child.on('error', () => undefined); // reported below as "did not start"
  child.unref();
  const address = `127.0.0.1:${port}`;
  if (!child.pid || !(await reachable(address, 60_000))) {
    if (child.pid) process.kill(child.pid, 'SIGTERM');
    throw new Error(
      `the embedded Temporal server (${temporalBinary()}) did not start; see ${join(dir, 'temporal.log')}. ` +
        'Run `npm run tools` to build it, or set TEMPORAL_ADDRESS to use your own server.',
    );
  }
  const server: DevServer = {
    address,
    uiUrl: `http://127.0.0.1:${uiPort}`,
    pid: child.pid,
    started: true,
  };
  writeFileSync(infoFile, JSON.stringify(server, null, 2));
  return server;
}

/** Stops a dev server this process started; its database stays for a later resume. */
export async function stopDevServer(server: DevServer): Promise<void> {
  if (!server.started || !alive(server.pid)) return;
  process.kill(server.pid, 'SIGTERM');
  const deadline = Date.now() + 10_000;
  while (alive(server.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (alive(server.pid)) process.kill(server.pid, 'SIGKILL');
}

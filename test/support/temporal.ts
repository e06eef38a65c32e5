/**
 * A real Temporal dev server for a test file, with its state in a file so it can be killed and
 * restarted on the same address, and `kubemend worker` processes that can be killed with -9.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { ensureDevServer, stopDevServer } from '../../cli/dev-server.js';
import type { DevServer } from '../../cli/dev-server.js';

const BIN = fileURLToPath(new URL('../../bin/kubemend.js', import.meta.url));

export class TestTemporal {
  private constructor(
    readonly dir: string,
    private server: DevServer,
  ) {}

  static async start(): Promise<TestTemporal> {
    const dir = mkdtempSync(join(tmpdir(), 'kubemend-temporal-'));
    return new TestTemporal(dir, await ensureDevServer(dir));
  }

  get address(): string {
    return this.server.address;
  }

  async client(): Promise<{ client: Client; close: () => Promise<void> }> {
    const connection = await Connection.connect({ address: this.address });
    return { client: new Client({ connection }), close: () => connection.close() };
  }

  /** Kills the server with SIGKILL (a crash) and starts it again on the same database and port. */
  async crashAndRestart(): Promise<void> {
    process.kill(this.server.pid, 'SIGKILL');
    await waitGone(this.server.pid);
    this.server = await ensureDevServer(this.dir);
  }

  async stop(): Promise<void> {
    await stopDevServer({ ...this.server, started: true });
  }
}

async function waitGone(pid: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A `kubemend worker` child process. */
export class WorkerProcess {
  private output = '';

  private constructor(private readonly child: ChildProcess) {
    child.stdout?.on('data', (d: Buffer) => (this.output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (this.output += d.toString()));
  }

  /** Starts a worker and resolves once it polls its task queue. */
  static async start(
    address: string,
    kubeconfig: string,
    inventory: string,
  ): Promise<WorkerProcess> {
    const child = spawn(
      process.execPath,
      [BIN, 'worker', '--kubeconfig', kubeconfig, '--inventory', inventory],
      {
        env: {
          ...process.env,
          NODE_OPTIONS: '',
          TEMPORAL_ADDRESS: address,
          KUBEMEND_LOG_LEVEL: 'INFO',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const worker = new WorkerProcess(child);
    const deadline = Date.now() + 60_000;
    while (!worker.output.includes('kubemend: worker for cluster')) {
      if (child.exitCode !== null) throw new Error(`worker exited: ${worker.output}`);
      if (Date.now() > deadline) throw new Error(`worker did not start: ${worker.output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return worker;
  }

  get log(): string {
    return this.output;
  }

  /** SIGKILL: no cleanup, no graceful shutdown, like a crashed machine. */
  async kill9(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGKILL');
    await exited;
  }
}

/**
 * Runs bounded commands on nodes over SSH (ssh2). Host keys are verified against the
 * inventory's known_hosts file; every command is wrapped in `timeout` on the node and guarded by
 * a local timer, since ssh2 itself has no command timeout.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import ssh2 from 'ssh2';
import type { ConnectConfig } from 'ssh2';
import {
  ConfigError,
  HostKeyMismatchError,
  NodeUnreachableError,
  RemoteCommandError,
} from '../common/errors.js';
import type { Inventory, InventoryNode } from '../common/inventory.js';

const { Client } = ssh2;

export interface RemoteResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Seconds the command may run on the node before `timeout` kills it. */
  timeoutSec?: number;
  /** Aborts the connection (activity cancellation). */
  signal?: AbortSignal;
  /** Resolve instead of throwing on a non-zero exit. */
  allowFailure?: boolean;
  /**
   * Notes the command on the node under this key before it starts (its PID and `note`), for
   * {@link NodeShell.awaitEarlier} in a later attempt of the same step.
   */
  record?: { key: string; note: string };
}

/** One node's SSH endpoint, credentials resolved from the inventory. */
export class NodeShell {
  constructor(
    private readonly inventory: Inventory,
    readonly node: InventoryNode,
  ) {}

  /** Runs `command` (a fixed template, never text from an alert) through `sh -c` on the node. */
  async run(command: string, options: RunOptions = {}): Promise<RemoteResult> {
    const timeoutSec = options.timeoutSec ?? this.inventory.ssh.commandTimeout;
    // The shell reports its PID, then becomes `timeout`, which passes signals on to the command:
    // a cancelled run can kill it by that PID.
    const wrapped =
      this.recordLine(options.record) +
      `echo ${PID_MARK}$$ >&2; exec timeout -k 5 ${timeoutSec} sh -c ${shellQuote(command)}`;
    const conn = await this.connect(options.signal);
    let pid: number | undefined;
    try {
      const result = await exec(conn, wrapped, (timeoutSec + 10) * 1000, options.signal, (p) => {
        pid = p;
      }).catch(async (err: unknown) => {
        if (options.signal?.aborted && pid) await this.kill(pid);
        throw err;
      });
      if (result.code === RECORD_FAILED) {
        throw new RemoteCommandError(
          this.node.name,
          command,
          result.code,
          `cannot note the command in ${this.inventory.ssh.stateDir} (inventory ssh.stateDir); nothing was run`,
        );
      }
      if (result.code === 124) {
        throw new RemoteCommandError(
          this.node.name,
          command,
          124,
          `timed out after ${timeoutSec}s`,
        );
      }
      if (result.code !== 0 && !options.allowFailure) {
        throw new RemoteCommandError(this.node.name, command, result.code, result.stderr);
      }
      return result;
    } finally {
      conn.end();
    }
  }

  /**
   * If an earlier attempt noted a command under `key`, waits (up to `timeoutSec`) until that
   * command has ended on the node, and returns its note; undefined when there was none. The
   * command may have outlived its worker: ssh does not end a remote command when the
   * connection drops, so a retry that ran it again would run it twice at once.
   */
  async awaitEarlier(
    key: string,
    timeoutSec: number,
    signal?: AbortSignal,
  ): Promise<string | undefined> {
    const file = `${this.inventory.ssh.stateDir}/${key}`;
    const script = [
      `[ -f ${file} ] || exit 0`,
      `read -r pid note < ${file}`,
      // Alive, not a zombie, and still the `timeout` that run() started (not a reused PID).
      'running() {',
      '  [ -r /proc/$pid/cmdline ] && tr "\\0" " " < /proc/$pid/cmdline | grep -q "^timeout " &&',
      '    [ "$(sed "s/.*) //" /proc/$pid/stat | cut -c1)" != Z ]',
      '}',
      'while running; do sleep 0.5; done',
      'echo "noted: $note"',
    ].join('\n');
    const { stdout } = await this.run(script, { timeoutSec, signal });
    const line = stdout.split('\n').find((l) => l.startsWith('noted: '));
    return line?.slice('noted: '.length);
  }

  /** Shell that writes the record file, or exits {@link RECORD_FAILED} without running anything. */
  private recordLine(record: RunOptions['record']): string {
    if (!record) return '';
    const dir = this.inventory.ssh.stateDir;
    const note = shellQuote(record.note);
    return `{ mkdir -p ${dir} && printf '%s %s\\n' "$$" ${note} > ${dir}/${record.key}; } 2>/dev/null || exit ${RECORD_FAILED}; `;
  }

  /** Best effort: ends a command of a cancelled activity over a fresh connection. */
  private async kill(pid: number): Promise<void> {
    try {
      const conn = await this.connect();
      await exec(conn, `kill -TERM ${pid} 2>/dev/null; true`, 10_000).finally(() => conn.end());
    } catch {
      // The node may be gone; its own `timeout` still ends the command.
    }
  }

  private connect(signal?: AbortSignal): Promise<ssh2.Client> {
    const { ssh } = this.inventory;
    const port = this.node.port ?? ssh.port;
    const expected = knownHostKeys(ssh.knownHostsFile, this.node.address, port);
    if (expected.length === 0) {
      throw new ConfigError(
        `${this.node.name}: no host key for ${hostPattern(this.node.address, port)} in ${ssh.knownHostsFile}`,
      );
    }
    let presented = '';
    const config: ConnectConfig = {
      host: this.node.address,
      port,
      username: this.node.user ?? ssh.user,
      privateKey: readKey(ssh.identityFile),
      readyTimeout: ssh.connectTimeout * 1000,
      keepaliveInterval: 5000,
      keepaliveCountMax: 3,
      hostVerifier: (key: Buffer) => {
        presented = fingerprint(key);
        return expected.includes(presented);
      },
    };
    return new Promise((resolve, reject) => {
      const conn = new Client();
      const onAbort = (): void => {
        conn.destroy();
        reject(new NodeUnreachableError(`${this.node.name}: cancelled while connecting`));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      conn
        .on('ready', () => {
          signal?.removeEventListener('abort', onAbort);
          resolve(conn);
        })
        .on('error', (err: Error & { level?: string }) => {
          signal?.removeEventListener('abort', onAbort);
          reject(this.connectError(err, presented, expected));
        })
        .connect(config);
    });
  }

  private connectError(
    err: Error & { level?: string },
    presented: string,
    expected: string[],
  ): Error {
    const where = `${this.node.name} (${this.node.address}:${this.node.port ?? this.inventory.ssh.port})`;
    if (presented && !expected.includes(presented)) {
      return new HostKeyMismatchError(
        `${where}: host key ${presented} is not the pinned one (${expected.join(', ')}); refusing to connect`,
      );
    }
    if (err.level === 'client-authentication') {
      return new ConfigError(`${where}: SSH authentication failed for the inventory's key`, {
        cause: err,
      });
    }
    return new NodeUnreachableError(`${where}: unreachable: ${err.message}`, { cause: err });
  }
}

const PID_MARK = 'kubemend-pid:';
/** Exit code of a wrapped command whose record could not be written (nothing ran). */
const RECORD_FAILED = 97; // not one of `timeout`'s own codes (124-127)

function exec(
  conn: ssh2.Client,
  command: string,
  deadlineMs: number,
  signal?: AbortSignal,
  onPid?: (pid: number) => void,
): Promise<RemoteResult> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => fail(new NodeUnreachableError('cancelled'));
    const settle = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    const fail = (err: Error): void => {
      settle();
      conn.destroy();
      reject(err);
    };
    // Backstop for a node that stops answering mid-command; `timeout` on the node is the main bound.
    const timer = setTimeout(
      () => fail(new NodeUnreachableError(`no answer within ${deadlineMs} ms`)),
      deadlineMs,
    );
    signal?.addEventListener('abort', onAbort, { once: true });
    conn.exec(command, (err, stream) => {
      if (err) return fail(new NodeUnreachableError(`cannot open a session: ${err.message}`));
      let stdout = '';
      let stderr = '';
      stream.on('data', (d: Buffer) => (stdout += d.toString()));
      stream.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        const mark = new RegExp(`^${PID_MARK}(\\d+)\n`).exec(stderr);
        if (mark) {
          onPid?.(Number(mark[1]));
          stderr = stderr.slice(mark[0].length);
        }
      });
      stream.on('close', (code: number | null) => {
        settle();
        resolve({ code, stdout, stderr });
      });
    });
  });
}

const keyCache = new Map<string, Buffer>();

function readKey(path: string): Buffer {
  let key = keyCache.get(path);
  if (!key) {
    try {
      key = readFileSync(path);
    } catch (err) {
      throw new ConfigError(`cannot read SSH identity file ${path}: ${(err as Error).message}`);
    }
    keyCache.set(path, key);
  }
  return key;
}

/** OpenSSH's fingerprint format: `SHA256:` + unpadded base64 of the key blob's SHA-256. */
export function fingerprint(keyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;
}

function hostPattern(address: string, port: number): string {
  return port === 22 ? address : `[${address}]:${port}`;
}

// TODO(ssh): hashed known_hosts entries (HashKnownHosts yes) and @cert-authority lines are not read.
/** Fingerprints of the keys known_hosts pins for this host and port (plain, unhashed entries). */
export function knownHostKeys(file: string, address: string, port: number): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read known_hosts ${file}: ${(err as Error).message}`);
  }
  const want = hostPattern(address, port);
  const keys: string[] = [];
  for (const line of text.split('\n')) {
    const [hosts, _type, blob] = line.trim().split(/\s+/);
    if (!hosts || hosts.startsWith('#') || !blob) continue;
    if (hosts.split(',').includes(want)) keys.push(fingerprint(Buffer.from(blob, 'base64')));
  }
  return keys;
}

/** Quotes a string for POSIX sh as one argument. */
export function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

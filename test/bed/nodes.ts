/**
 * Simulated nodes: one real OpenSSH server per node on its own loopback address, with a node
 * directory holding the node's host state as files (clock offset for libfaketime, unit states,
 * the Calico CNI kubeconfig, the ledger of mutating commands) and the node's tools in `bin/`.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { makeCniToken, readCniToken, writeCniConflist, writeCniKubeconfig } from './cni-token.js';
import type { CniTokenClaims } from './cni-token.js';
import { nodeToolFiles, TIME_SYNC_UNIT } from './node-tools.js';
import type { TimeSyncKind } from './node-tools.js';
import {
  freePort,
  isAlive,
  killDaemon,
  probeTcp,
  spawnDaemon,
  tailFile,
  waitFor,
} from './procs.js';
import type { ProcRecord, ProcSpec } from './procs.js';

/** libfaketime as installed by the Debian `faketime` package. */
export const LIBFAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';
const SSHD = '/usr/sbin/sshd';

/** A node as recorded in bed.json. */
export interface BedNode {
  name: string;
  /** 1-based position; the address is 127.0.0.(20+index). */
  index: number;
  address: string;
  port: number;
  timeSync: TimeSyncKind;
  dir: string;
}

/** One line of a node's ledger. */
export interface LedgerEntry {
  /** Real (not the node's) epoch milliseconds. */
  at: number;
  node: string;
  cmd: string;
  rc: number;
}

/** The slice of a bed the node helpers need. */
export interface NodeHost {
  dir: string;
  nodes: BedNode[];
  processes: Record<string, ProcRecord>;
  save(): void;
}

/** Paths of the SSH client material shared by all nodes. */
export interface SshClientFiles {
  keyPath: string;
  knownHostsPath: string;
}

/** Loopback address of the node at 1-based `index`. */
export function nodeAddress(index: number): string {
  if (index < 1 || index > 230) throw new Error(`node index out of range: ${index}`);
  return `127.0.0.${20 + index}`;
}

function keygen(file: string, comment: string): void {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file], {
    stdio: 'ignore',
  });
}

/** Generates the client keypair the bed (and kubemend) log in with. */
export function createSshClient(bedDir: string): SshClientFiles {
  const dir = join(bedDir, 'ssh');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const keyPath = join(dir, 'id_ed25519');
  keygen(keyPath, 'kubemend-bed');
  return { keyPath, knownHostsPath: join(dir, 'known_hosts') };
}

function sshdConfig(node: BedNode): string {
  const env = [
    `LD_PRELOAD=${LIBFAKETIME}`,
    `FAKETIME_TIMESTAMP_FILE=${node.dir}/faketime.rc`,
    'FAKETIME_NO_CACHE=1',
    'FAKETIME_DONT_FAKE_MONOTONIC=1',
    `KUBEMEND_NODE_DIR=${node.dir}`,
    `KUBEMEND_NODE_NAME=${node.name}`,
    `PATH=${node.dir}/bin:/usr/local/bin:/usr/bin:/bin`,
  ];
  return [
    `# sshd of simulated node ${node.name} (kubemend test bed)`,
    `ListenAddress ${node.address}`,
    `Port ${node.port}`,
    `HostKey ${node.dir}/ssh_host_ed25519_key`,
    `PidFile ${node.dir}/sshd.pid`,
    `AuthorizedKeysFile ${node.dir}/authorized_keys`,
    'PermitRootLogin prohibit-password',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    'StrictModes no',
    'UseDNS no',
    'PrintMotd no',
    'MaxStartups 100:30:200',
    'MaxSessions 32',
    'LogLevel VERBOSE',
    'Subsystem sftp internal-sftp',
    `SetEnv ${env.join(' ')}`,
    '',
  ].join('\n');
}

function writeFiles(dir: string, files: Record<string, string>, mode: number): void {
  for (const [rel, content] of Object.entries(files)) {
    const file = join(dir, rel);
    mkdirSync(join(file, '..'), { recursive: true });
    writeFileSync(file, content);
    chmodSync(file, mode);
  }
}

function writeUnits(node: BedNode): void {
  const now = Math.floor(Date.now() / 1000);
  const units = ['kubelet', 'containerd', TIME_SYNC_UNIT[node.timeSync]].filter(
    (u): u is string => !!u,
  );
  writeFiles(
    node.dir,
    Object.fromEntries(units.map((u) => [`units/${u}`, `active ${now}\n`])),
    0o644,
  );
}

/** Options of {@link createNode}. */
export interface CreateNodeOptions {
  name: string;
  index: number;
  timeSync: TimeSyncKind;
  bedDir: string;
  client: SshClientFiles;
  apiserverUrl: string;
  tokenTtlSeconds: number;
  saKeyPem: string;
}

/**
 * Creates a node directory (host key, sshd config, tools, units, clock in sync, NTP reachable,
 * a valid CNI token, an empty ledger) and picks a free port on the node's address.
 */
export async function createNode(opts: CreateNodeOptions): Promise<BedNode> {
  const address = nodeAddress(opts.index);
  const dir = join(opts.bedDir, 'nodes', opts.name);
  const node: BedNode = {
    name: opts.name,
    index: opts.index,
    address,
    timeSync: opts.timeSync,
    dir,
    port: 0,
  };
  node.port = await freePort(address);
  mkdirSync(dir, { recursive: true });
  keygen(join(dir, 'ssh_host_ed25519_key'), opts.name);
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(`${opts.client.keyPath}.pub`));
  writeFileSync(join(dir, 'sshd_config'), sshdConfig(node));
  writeFiles(dir, nodeToolFiles(node.name, dir, node.timeSync), 0o755);
  writeFiles(
    dir,
    {
      'faketime.rc': '+0\n',
      'ntp-reachable': 'yes\n',
      'ledger.jsonl': '',
      kind: `${node.timeSync}\n`,
    },
    0o644,
  );
  writeUnits(node);
  const now = Math.floor(Date.now() / 1000);
  writeCniConflist(dir);
  writeCniKubeconfig(
    dir,
    opts.apiserverUrl,
    makeCniToken(now, now + opts.tokenTtlSeconds, opts.saKeyPem),
  );
  return node;
}

/** Writes known_hosts with every node's host key (`[addr]:port ssh-ed25519 AAAA...`). */
export function writeKnownHosts(client: SshClientFiles, nodes: BedNode[]): void {
  const lines = nodes.map((n) => {
    const [type, key] = readFileSync(join(n.dir, 'ssh_host_ed25519_key.pub'), 'utf8')
      .trim()
      .split(/\s+/);
    return `[${n.address}]:${n.port} ${type} ${key}`;
  });
  writeFileSync(client.knownHostsPath, lines.join('\n') + '\n');
}

function sshdSpec(node: BedNode): ProcSpec {
  return {
    name: `sshd:${node.name}`,
    command: SSHD,
    args: ['-D', '-f', join(node.dir, 'sshd_config'), '-E', join(node.dir, 'sshd.log')],
    logFile: join(node.dir, 'sshd.out'),
    match: join(node.dir, 'sshd_config'),
  };
}

function findNode(host: NodeHost, name: string): BedNode {
  const node = host.nodes.find((n) => n.name === name);
  if (!node)
    throw new Error(
      `no node '${name}' in bed ${host.dir} (nodes: ${host.nodes.map((n) => n.name).join(', ')})`,
    );
  return node;
}

/** Starts (or restarts) a node's sshd and waits until it answers with an SSH banner. */
export async function startNode(host: NodeHost, name: string): Promise<void> {
  const node = findNode(host, name);
  // sshd refuses to start without its privilege-separation directory.
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const rec = spawnDaemon(sshdSpec(node));
  host.processes[rec.name] = rec;
  host.save();
  await waitFor(
    `sshd of ${name} on ${node.address}:${node.port}`,
    () => probeTcp(node.address, node.port, 'SSH-'),
    {
      timeoutMs: 10_000,
      abortIf: () =>
        isAlive(rec.pid) ? undefined : `sshd exited: ${tailFile(join(node.dir, 'sshd.log'))}`,
    },
  );
}

/**
 * Stops a node's sshd and every session it serves: the node becomes unreachable over SSH. Its
 * files (and the simulated kubelet) are untouched.
 */
export async function stopNode(host: NodeHost, name: string): Promise<void> {
  findNode(host, name);
  const rec = host.processes[`sshd:${name}`];
  if (rec) await killDaemon(rec, 3000);
}

/** Parsed ledger of a node: every mutating node command, oldest first. */
export function readLedger(host: Pick<NodeHost, 'dir' | 'nodes'>, name: string): LedgerEntry[] {
  const node = findNode(host as NodeHost, name);
  const text = existsSync(join(node.dir, 'ledger.jsonl'))
    ? readFileSync(join(node.dir, 'ledger.jsonl'), 'utf8')
    : '';
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as LedgerEntry);
}

/** Sets a node's clock offset in seconds (negative: behind) via its faketime.rc. */
export function setClockOffset(
  host: Pick<NodeHost, 'dir' | 'nodes'>,
  name: string,
  seconds: number,
): void {
  const node = findNode(host as NodeHost, name);
  const text = seconds < 0 ? `${Math.round(seconds)}` : `+${Math.round(seconds)}`;
  writeFileSync(join(node.dir, 'faketime.rc.tmp'), text + '\n');
  renameSync(join(node.dir, 'faketime.rc.tmp'), join(node.dir, 'faketime.rc'));
}

/** Reads a node's clock offset in seconds from faketime.rc (`+0`, `-345600`, `-4d`, `-96h`...). */
export function readClockOffset(nodeDir: string): number {
  let v = '+0';
  try {
    v = readFileSync(join(nodeDir, 'faketime.rc'), 'utf8').trim().split(/\s+/)[0] || '+0';
  } catch {
    // a missing file means no offset, as for libfaketime
  }
  const m = /^([+-]?\d+(?:\.\d+)?)([smhd]?)$/.exec(v);
  if (!m) return 0;
  const mult: Record<string, number> = { '': 1, s: 1, m: 60, h: 3600, d: 86400 };
  return Number(m[1]) * (mult[m[2] as string] as number);
}

/** Makes a node's NTP source reachable or not (time-sync restarts only step when reachable). */
export function setNtpReachable(
  host: Pick<NodeHost, 'dir' | 'nodes'>,
  name: string,
  reachable: boolean,
): void {
  writeFileSync(
    join(findNode(host as NodeHost, name).dir, 'ntp-reachable'),
    reachable ? 'yes\n' : 'no\n',
  );
}

/**
 * Makes a node's NTP source answer (`ntp-delay`) or its unit restarts finish (`unit-delay`)
 * only after `seconds` (0: at once), so a sync or a restart is still running when a test acts.
 */
export function setDelay(
  host: Pick<NodeHost, 'dir' | 'nodes'>,
  name: string,
  knob: 'ntp-delay' | 'unit-delay',
  seconds: number,
): void {
  writeFileSync(join(findNode(host as NodeHost, name).dir, knob), `${seconds}\n`);
}

/** Forces a unit's state file, e.g. `failed` kubelet, without a ledger entry. */
export function setUnitState(
  host: Pick<NodeHost, 'dir' | 'nodes'>,
  name: string,
  unit: string,
  state: 'active' | 'inactive' | 'failed',
): void {
  const now = Math.floor(
    (Date.now() + readClockOffset(findNode(host as NodeHost, name).dir) * 1000) / 1000,
  );
  writeFileSync(join(findNode(host as NodeHost, name).dir, 'units', unit), `${state} ${now}\n`);
}

/** Reads a unit's state (`active`, `inactive`, `failed`), `inactive` when the unit is unknown. */
export function readUnitState(nodeDir: string, unit: string): string {
  try {
    return readFileSync(join(nodeDir, 'units', unit), 'utf8').split(' ')[0] ?? 'inactive';
  } catch {
    return 'inactive';
  }
}

/** The claims of the token in a node's CNI kubeconfig. */
export function readNodeToken(
  host: Pick<NodeHost, 'dir' | 'nodes'>,
  name: string,
): CniTokenClaims | undefined {
  return readCniToken(findNode(host as NodeHost, name).dir)?.claims;
}

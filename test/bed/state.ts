/**
 * bed.json: everything a separate process needs to find, restart or stop a running bed (pids,
 * ports, paths, nodes). Written after every process start, so a half-started bed can be downed.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import type { BedLogger } from './log.js';
import type { BedNode } from './nodes.js';
import type { ProcRecord } from './procs.js';

/** Lifecycle of a bed. */
export type BedPhase = 'starting' | 'ready' | 'broken' | 'failed' | 'stopped';

/** Ports the control plane listens on (all on 127.0.0.1). */
export interface BedPorts {
  etcdClient: number;
  etcdPeer: number;
  apiserver: number;
  controllerManager: number;
  scheduler: number;
}

/** Files of a bed. */
export interface BedPaths {
  /** kubeconfig of user `kubemend`: hand this one to the engine. */
  kubeconfig: string;
  /** kubeconfig of user `bed-admin` (system:masters), used by the harness and the simulator. */
  adminKubeconfig: string;
  inventory: string;
  sshKey: string;
  knownHosts: string;
  auditLog: string;
  bedLog: string;
  simLog: string;
  saKey: string;
}

/** The content of bed.json. */
export interface BedState {
  version: 1;
  scenario: string;
  scenarioFile: string;
  dir: string;
  phase: BedPhase;
  createdAt: string;
  binDir: string;
  apiserverUrl: string;
  ports: BedPorts;
  paths: BedPaths;
  nodes: BedNode[];
  processes: Record<string, ProcRecord>;
  tokenTtlSeconds: number;
  /** Clock offset in seconds applied by the suspend, per suspended node. */
  suspended: Record<string, number>;
  /** True when startBed created the directory itself (a temp dir): stop() removes it. */
  tempDir: boolean;
  /** Pods the resume disruption deleted: `namespace/name` → uid. */
  disrupted: Record<string, string>;
}

/** File name of the state below a bed directory. */
export const STATE_FILE = 'bed.json';

/** Writes bed.json atomically. */
export function saveState(state: BedState): void {
  const file = join(state.dir, STATE_FILE);
  writeFileSync(`${file}.tmp`, JSON.stringify(state, null, 2) + '\n');
  renameSync(`${file}.tmp`, file);
}

/** Reads bed.json from a bed directory. */
export function loadState(dir: string): BedState {
  const file = join(dir, STATE_FILE);
  if (!existsSync(file)) throw new Error(`no bed in ${dir}: ${STATE_FILE} not found`);
  const state = JSON.parse(readFileSync(file, 'utf8')) as BedState;
  if (state.version !== 1) throw new Error(`${file}: unsupported version ${String(state.version)}`);
  return state;
}

/** A bed being started or operated: its state, where to save it, and its decision log. */
export interface BedContext {
  state: BedState;
  log: BedLogger;
  save(): void;
}

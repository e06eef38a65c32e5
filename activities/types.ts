/**
 * Inputs of the activities. Kept apart from their implementations so that workflow code can
 * import the types without pulling in ssh2 or the Kubernetes client.
 */
import type { PodRef } from '../common/types.js';

export interface NodeTarget {
  cluster: string;
  node: string;
}

export interface ClockReading {
  node: string;
  /** Node wall clock minus worker wall clock, corrected by half the round trip. */
  offsetMs: number;
  rttMs: number;
  timeSync: TimeSyncKind;
}

export type TimeSyncKind = 'chrony' | 'systemd-timesyncd' | 'ntpdate' | 'unknown';

export interface SyncClockInput extends NodeTarget {
  step: string;
  maxSkewMs: number;
  ntpServer: string;
}

export interface RestartUnitInput extends NodeTarget {
  step: string;
  unit: string;
  /** Epoch ms when the step first started; a unit that (re)entered active after it is left alone. */
  notBefore: number;
}

export interface MeasureClockInput extends NodeTarget {
  step: string;
  maxSkewMs: number;
}

export interface FindStuckPodsInput {
  cluster: string;
  step: string;
  namespaces: string[];
  allowlist: string[];
  evidence: string;
  minStuckForMs: number;
}

export interface ForceDeletePodsInput {
  cluster: string;
  step: string;
  pods: PodRef[];
  evidence: string;
  minStuckForMs: number;
  batchSize: number;
}

export interface DaemonSetTarget {
  cluster: string;
  step: string;
  namespace: string;
  name: string;
}

export interface WaitInput {
  /** How long the wait may take in all, counted from its first attempt. */
  timeoutMs: number;
  /** Nodes that failed earlier in the run; their pods are not waited for. */
  ignoreNodes?: string[];
}

export interface RolloutRestartInput extends DaemonSetTarget {
  /** Derived from the run and step, so a retried activity patches the same value. */
  token: string;
  restartedAt: string;
}

export interface WaitPodsReadyInput extends WaitInput {
  cluster: string;
  step: string;
  namespaces: string[];
}

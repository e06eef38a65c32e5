/**
 * The precise definition of a "stuck" pod, as pure functions over API objects. A pod is stuck
 * when all of these hold:
 *  - it is `Terminating` (deletionTimestamp set, so its grace period is already included) for
 *    longer than `minStuckForMs`, or it is scheduled, `Pending`, with a container waiting in
 *    `ContainerCreating`, and older than `minStuckForMs`;
 *  - an event about this very pod (same UID) matches the runbook's evidence pattern, so the
 *    cause is the one the runbook fixes and not, say, a slow image pull.
 * A stuck pod is only acted on when it is safe to: its namespace is allowlisted, it is owned by
 * a controller that recreates it (not a bare pod, not a StatefulSet whose identity and volumes
 * must not exist twice), it has no finalizers (a force delete would not remove it), and it does
 * not use the host network (CNI cannot be its problem).
 */
import type { CoreV1Event, V1Pod } from '@kubernetes/client-node';
import type { PodRef } from '../common/types.js';

export interface StuckRules {
  allowlist: readonly string[];
  evidence: RegExp;
  minStuckForMs: number;
  now: number;
}

export type Verdict =
  | { kind: 'healthy' }
  | { kind: 'stuck'; pod: PodRef }
  /** Stuck, but kubemend must not touch it; `why` goes to the report for a human. */
  | { kind: 'excluded'; pod: PodRef; why: string }
  /** Looks stuck, but nothing ties it to the runbook's cause. */
  | { kind: 'unexplained'; pod: PodRef };

/** Classifies one pod given the events whose involvedObject is that pod. */
export function classifyPod(
  pod: V1Pod,
  events: readonly CoreV1Event[],
  rules: StuckRules,
): Verdict {
  const state = stuckState(pod, rules);
  if (!state) return { kind: 'healthy' };
  const evidence = events.find(
    (e) => e.involvedObject.uid === pod.metadata?.uid && rules.evidence.test(e.message ?? ''),
  );
  const ref: PodRef = {
    namespace: pod.metadata?.namespace ?? '',
    name: pod.metadata?.name ?? '',
    uid: pod.metadata?.uid ?? '',
    node: pod.spec?.nodeName,
    state,
    reason: evidence ? `${evidence.reason ?? 'event'}: ${evidence.message ?? ''}` : '',
  };
  if (!evidence) return { kind: 'unexplained', pod: ref };
  const why = exclusion(pod, rules);
  return why ? { kind: 'excluded', pod: ref, why } : { kind: 'stuck', pod: ref };
}

/** `terminating` / `creating` when the pod has been in that state too long, else undefined. */
export function stuckState(
  pod: V1Pod,
  rules: Pick<StuckRules, 'minStuckForMs' | 'now'>,
): PodRef['state'] | undefined {
  const deletion = pod.metadata?.deletionTimestamp;
  if (deletion) {
    return rules.now - new Date(deletion).getTime() >= rules.minStuckForMs
      ? 'terminating'
      : undefined;
  }
  if (!pod.spec?.nodeName || pod.status?.phase !== 'Pending') return undefined;
  const creating = (pod.status.containerStatuses ?? []).some(
    (c) => c.state?.waiting?.reason === 'ContainerCreating',
  );
  const created = pod.metadata?.creationTimestamp;
  if (!creating || !created) return undefined;
  return rules.now - new Date(created).getTime() >= rules.minStuckForMs ? 'creating' : undefined;
}

function exclusion(pod: V1Pod, rules: StuckRules): string | undefined {
  const ns = pod.metadata?.namespace ?? '';
  if (!rules.allowlist.includes(ns)) return `namespace ${ns} is not in the runbook's allowlist`;
  if (pod.spec?.hostNetwork) return 'uses the host network, so CNI is not what holds it';
  if ((pod.metadata?.finalizers ?? []).length > 0) {
    return `has finalizers (${pod.metadata?.finalizers?.join(', ')}); a force delete would not remove it`;
  }
  const owner = pod.metadata?.ownerReferences?.find((o) => o.controller);
  if (!owner) return 'has no controller; deleting it would lose it for good';
  if (owner.kind === 'StatefulSet') {
    return 'belongs to a StatefulSet; force-deleting it risks two pods with one identity';
  }
  return undefined;
}

/** The pod is still the one diagnosed (same UID) and still stuck: safe to force-delete now. */
export function stillStuck(
  pod: V1Pod,
  ref: PodRef,
  rules: Pick<StuckRules, 'minStuckForMs' | 'now'>,
): boolean {
  return pod.metadata?.uid === ref.uid && stuckState(pod, rules) !== undefined;
}

/**
 * Kubernetes activities (@kubernetes/client-node): find stuck pods, force-delete them in
 * batches, rollout-restart a DaemonSet idempotently, wait for a rollout and for pods to be
 * Ready. Long waits heartbeat and stop when the activity is cancelled.
 */
import { Context, log, sleep } from '@temporalio/activity';
import {
  ApiException,
  AppsV1Api,
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
} from '@kubernetes/client-node';
import type { CoreV1Event, V1DaemonSet, V1Pod } from '@kubernetes/client-node';
import { ConvergenceTimeoutError, KubernetesRequestError } from '../common/errors.js';
import type { Action, PodRef, StepResult } from '../common/types.js';
import { isTransient, withRetries } from './kube-retry.js';
import { classifyPod, stillStuck } from './stuck-pods.js';
import type {
  DaemonSetTarget,
  FindStuckPodsInput,
  ForceDeletePodsInput,
  RolloutRestartInput,
  WaitInput,
  WaitPodsReadyInput,
} from './types.js';

/** Annotation kubectl's `rollout restart` sets; changing it rolls the pods. */
export const RESTARTED_AT = 'kubectl.kubernetes.io/restartedAt';
/** Annotation recording which run and step restarted the workload, for idempotency. */
export const RESTART_TOKEN = 'kubemend.io/restart-token';
const POLL_MS = 1000;

/** Throws once the wait has used up its step's timeout, counted from the first attempt. */
function checkDeadline(timeoutMs: number, what: () => string): void {
  const started = Context.current().info.scheduledTimestampMs;
  if (Date.now() - started > timeoutMs) {
    throw new ConvergenceTimeoutError(
      `not converged after ${Math.round(timeoutMs / 1000)}s: ${what()}`,
    );
  }
}

export class KubeClients {
  readonly core: CoreV1Api;
  readonly apps: AppsV1Api;

  constructor(kubeconfigPath: string) {
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfigPath);
    this.core = kc.makeApiClient(CoreV1Api);
    this.apps = kc.makeApiClient(AppsV1Api);
  }
}

/**
 * Maps an API error, once request-level retries are spent, to what the step's retry policy
 * needs: 400/401/403/404/422 cannot be fixed by retrying; 409, 429, 5xx and network errors are
 * rethrown for the step to be retried with its backoff.
 */
function translate(err: unknown, what: string): never {
  if (err instanceof ApiException && [400, 401, 403, 404, 422].includes(err.code)) {
    throw new KubernetesRequestError(`${what}: HTTP ${err.code}: ${apiMessage(err)}`);
  }
  if (err instanceof ApiException) throw new Error(`${what}: HTTP ${err.code}: ${apiMessage(err)}`);
  throw err;
}

/** One API request, retried on transient failures, its final error translated. */
function api<T>(what: string, send: (attempt: number) => Promise<T>): Promise<T> {
  return withRetries(what, send).catch((e: unknown) => translate(e, what));
}

function apiMessage(err: ApiException<unknown>): string {
  const body = err.body;
  if (typeof body === 'string') {
    try {
      return (JSON.parse(body) as { message?: string }).message ?? body;
    } catch {
      return body;
    }
  }
  return (body as { message?: string } | undefined)?.message ?? err.message;
}

function isCode(err: unknown, code: number): boolean {
  return err instanceof ApiException && err.code === code;
}

async function listAllPods(k: KubeClients, namespace: string): Promise<V1Pod[]> {
  const pods: V1Pod[] = [];
  let cont: string | undefined;
  do {
    const page = await api(`list pods in ${namespace}`, () =>
      k.core.listNamespacedPod({ namespace, limit: 500, _continue: cont }),
    );
    pods.push(...page.items);
    cont = page.metadata?._continue || undefined;
  } while (cont);
  return pods;
}

async function listPodWarnings(
  k: KubeClients,
  namespace: string,
): Promise<Map<string, CoreV1Event[]>> {
  const byUid = new Map<string, CoreV1Event[]>();
  let cont: string | undefined;
  do {
    const page = await api(`list events in ${namespace}`, () =>
      k.core.listNamespacedEvent({
        namespace,
        fieldSelector: 'involvedObject.kind=Pod,type=Warning',
        limit: 500,
        _continue: cont,
      }),
    );
    for (const e of page.items) {
      const uid = e.involvedObject.uid ?? '';
      byUid.set(uid, [...(byUid.get(uid) ?? []), e]);
    }
    cont = page.metadata?._continue || undefined;
  } while (cont);
  return byUid;
}

/** `k8s.findStuckPods`: classifies every pod of the namespaces; flags the ones safe to clear. */
export async function findStuckPods(
  k: KubeClients,
  input: FindStuckPodsInput,
): Promise<StepResult> {
  const rules = {
    allowlist: input.allowlist,
    evidence: new RegExp(input.evidence),
    minStuckForMs: input.minStuckForMs,
    now: Date.now(),
  };
  const result: StepResult = {
    flagged: [],
    changed: [],
    actions: [],
    failed: [],
    attention: [],
    summary: '',
    pods: [],
  };
  let unexplained = 0;
  for (const namespace of input.namespaces) {
    const [pods, events] = await Promise.all([
      listAllPods(k, namespace),
      listPodWarnings(k, namespace),
    ]);
    for (const pod of pods) {
      const verdict = classifyPod(pod, events.get(pod.metadata?.uid ?? '') ?? [], rules);
      if (verdict.kind === 'healthy') continue;
      const p = verdict.pod;
      const key = `${p.namespace}/${p.name}`;
      if (verdict.kind === 'unexplained') {
        unexplained++;
        log.info('Pod looks stuck but has no matching evidence, leaving it', {
          namespace,
          pod: p.name,
          node: p.node,
          state: p.state,
        });
        continue;
      }
      result.pods?.push(p);
      if (verdict.kind === 'excluded') {
        result.attention.push(`pod ${key} is stuck (${p.state}) but left alone: ${verdict.why}`);
        log.warn('Stuck pod excluded', { namespace, pod: p.name, node: p.node, why: verdict.why });
      } else {
        result.flagged.push(key);
        log.info('Stuck pod found', { namespace, pod: p.name, node: p.node, state: p.state });
      }
    }
  }
  const byState = (s: PodRef['state']): number =>
    result.pods?.filter((p) => p.state === s && result.flagged.includes(`${p.namespace}/${p.name}`))
      .length ?? 0;
  result.summary =
    `${result.flagged.length} stuck (${byState('terminating')} terminating, ${byState('creating')} creating)` +
    `, ${result.attention.length} excluded, ${unexplained} without evidence`;
  return result;
}

/**
 * `k8s.forceDeletePods`: deletes each diagnosed pod with grace period 0, in batches, after
 * re-reading it: a pod that is gone, was replaced (other UID) or recovered is skipped. The
 * delete carries a UID precondition, so a same-named replacement is never hit. Progress is
 * heartbeated per pod, and a retried attempt skips the pods an earlier attempt finished.
 */
export async function forceDeletePods(
  k: KubeClients,
  input: ForceDeletePodsInput,
): Promise<StepResult> {
  const ctx = Context.current();
  // Progress is per pod: an attempt that failed part-way (one pod's requests kept failing)
  // hands its finished pods to the next attempt, which does not touch them again.
  const done = (ctx.info.heartbeatDetails as { actions: Action[] } | undefined) ?? { actions: [] };
  const finished = new Set(done.actions.map((a) => a.target));
  const todo = input.pods.filter((p) => !finished.has(`pod/${p.namespace}/${p.name}`));
  const rules = { minStuckForMs: input.minStuckForMs, now: Date.now() };
  // Heartbeat between batches too: a slow batch (API under load) must not look like a dead worker.
  const timer = setInterval(() => ctx.heartbeat(done), 2_000);
  try {
    for (let i = 0; i < todo.length; i += input.batchSize) {
      const batch = todo.slice(i, i + input.batchSize);
      const settled = await Promise.allSettled(
        batch.map((ref) => forceDeleteOne(k, ref, rules, input.step)),
      );
      for (const s of settled) if (s.status === 'fulfilled') done.actions.push(s.value);
      // The SDK sends the last heartbeat with a failure, so this survives the throw below.
      ctx.heartbeat(done);
      const failure = settled.find((s) => s.status === 'rejected');
      if (failure) throw failure.reason;
    }
  } finally {
    clearInterval(timer);
  }
  const deleted = done.actions
    .filter((a) => a.result === 'ok')
    .map((a) => a.target.replace(/^pod\//, ''));
  const failed = done.actions.filter((a) => a.result === 'failed');
  return {
    flagged: [],
    changed: deleted,
    actions: done.actions,
    failed: [],
    attention: failed.map((a) => `force delete of ${a.target} failed: ${String(a.details?.error)}`),
    summary: `${deleted.length} force-deleted, ${done.actions.length - deleted.length - failed.length} skipped, ${failed.length} failed`,
  };
}

async function forceDeleteOne(
  k: KubeClients,
  ref: PodRef,
  rules: { minStuckForMs: number; now: number },
  step: string,
): Promise<Action> {
  const at = new Date().toISOString();
  const action = (result: Action['result'], details: Record<string, unknown>): Action => ({
    kind: 'pod.forceDelete',
    target: `pod/${ref.namespace}/${ref.name}`,
    at,
    result,
    step,
    details: { uid: ref.uid, node: ref.node, state: ref.state, ...details },
  });
  const fields = { namespace: ref.namespace, pod: ref.name, node: ref.node };
  const key = `${ref.namespace}/${ref.name}`;
  let pod: V1Pod;
  try {
    pod = await withRetries(`read pod ${key}`, () =>
      k.core.readNamespacedPod({ namespace: ref.namespace, name: ref.name }),
    );
  } catch (err) {
    if (isCode(err, 404)) {
      log.info('Pod already gone, skipping', fields);
      return action('skipped', { why: 'already gone' });
    }
    return translate(err, `read pod ${key}`);
  }
  if (!stillStuck(pod, ref, rules)) {
    log.info('Pod replaced or recovered since diagnosis, skipping', fields);
    return action('skipped', { why: 'replaced or no longer stuck' });
  }
  // Set when an attempt failed in a way that may hide a delete the apiserver did carry out
  // (a 5xx or a dropped connection; a 429 means the request was not processed).
  let maybeApplied = false;
  try {
    await withRetries(`force-delete pod ${key}`, () =>
      k.core
        .deleteNamespacedPod({
          namespace: ref.namespace,
          name: ref.name,
          gracePeriodSeconds: 0,
          body: { gracePeriodSeconds: 0, preconditions: { uid: ref.uid } },
        })
        .catch((e: unknown) => {
          if (isTransient(e) && !isCode(e, 429)) maybeApplied = true;
          throw e;
        }),
    );
  } catch (err) {
    if ((isCode(err, 404) || isCode(err, 409)) && maybeApplied) {
      // The earlier attempt most likely reached the apiserver and only its answer was lost:
      // the pod with this UID is gone, which is what was asked for.
      log.info('Pod gone after a delete whose answer was lost, counting it deleted', fields);
      return action('ok', { note: 'answer to the delete was lost; pod confirmed gone' });
    }
    if (isCode(err, 404) || isCode(err, 409)) {
      log.info('Pod vanished or changed before delete, skipping', fields);
      return action('skipped', { why: 'gone or replaced before delete' });
    }
    return translate(err, `force-delete pod ${key}`);
  }
  log.info('Pod force-deleted', fields);
  return action('ok', {});
}

/**
 * `k8s.rolloutRestart` of a DaemonSet, like `kubectl rollout restart`, but idempotent: the
 * patch also records the run's token, and a DaemonSet already carrying it is left alone.
 */
export async function rolloutRestartDaemonSet(
  k: KubeClients,
  input: RolloutRestartInput,
): Promise<StepResult> {
  const { namespace, name } = input;
  const target = `daemonset/${namespace}/${name}`;
  const ds = await api(`read ${target}`, () => k.apps.readNamespacedDaemonSet({ namespace, name }));
  const strategy = ds.spec?.updateStrategy?.type ?? 'RollingUpdate';
  if (strategy !== 'RollingUpdate') {
    throw new KubernetesRequestError(
      `${target} uses updateStrategy ${strategy}; a restart would never roll`,
    );
  }
  const annotations = ds.spec?.template.metadata?.annotations ?? {};
  if (annotations[RESTART_TOKEN] === input.token) {
    log.info('DaemonSet already restarted by this step, nothing to do', {
      namespace,
      daemonset: name,
    });
    return restartResult(input, annotations[RESTARTED_AT] ?? input.restartedAt, true);
  }
  const patch = {
    spec: {
      template: {
        metadata: {
          annotations: { [RESTARTED_AT]: input.restartedAt, [RESTART_TOKEN]: input.token },
        },
      },
    },
  };
  // Sending the same patch again (its answer lost) sets the same values: no second rollout.
  await api(`patch ${target}`, () =>
    k.apps.patchNamespacedDaemonSet(
      { namespace, name, body: patch },
      setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
    ),
  );
  log.info('DaemonSet rollout restarted', {
    namespace,
    daemonset: name,
    restartedAt: input.restartedAt,
  });
  return restartResult(input, input.restartedAt, false);
}

function restartResult(
  input: RolloutRestartInput,
  restartedAt: string,
  already: boolean,
): StepResult {
  const target = `daemonset/${input.namespace}/${input.name}`;
  return {
    flagged: [],
    changed: [target],
    actions: [
      {
        kind: 'daemonset.rolloutRestart',
        target,
        at: new Date().toISOString(),
        result: 'ok',
        step: input.step,
        details: { restartedAt, alreadyApplied: already },
      },
    ],
    failed: [],
    attention: [],
    summary: already ? 'already restarted by this run' : `restarted at ${restartedAt}`,
  };
}

/** The same test as `kubectl rollout status` for a DaemonSet. */
export function daemonSetRolledOut(ds: V1DaemonSet): boolean {
  const s = ds.status;
  if (!s) return false;
  const desired = s.desiredNumberScheduled;
  return (
    (ds.metadata?.generation ?? 0) <= (s.observedGeneration ?? -1) &&
    (s.updatedNumberScheduled ?? 0) >= desired &&
    (s.numberAvailable ?? 0) >= desired
  );
}

interface Probe {
  done: boolean;
  /** One line for the heartbeat, the log and, on timeout, the error. */
  progress: string;
}

/**
 * Polls `probe` until it is done or the step's timeout has passed since the first attempt.
 * Transient API errors (a restarting apiserver, 429, 5xx) do not end the wait; they are logged
 * once per streak and polling goes on. Each poll heartbeats, which is also how a cancelled
 * wait learns it was cancelled.
 */
async function pollUntil(
  timeoutMs: number,
  what: string,
  probe: () => Promise<Probe>,
): Promise<string> {
  let last = 'no answer yet';
  let failing = false;
  for (;;) {
    try {
      const p = await probe();
      last = p.progress;
      failing = false;
      if (p.done) return p.progress;
    } catch (err) {
      if (err instanceof KubernetesRequestError) throw err;
      if (!failing)
        log.warn('Kubernetes API unavailable, still waiting', {
          what,
          error: (err as Error).message,
        });
      failing = true;
    }
    Context.current().heartbeat(last);
    checkDeadline(timeoutMs, () => `${what}: ${last}`);
    await sleep(POLL_MS);
  }
}

function waitResult(summary: string): StepResult {
  return { flagged: [], changed: [], actions: [], failed: [], attention: [], summary };
}

/**
 * `k8s.waitRollout`: polls until the DaemonSet is rolled out; the step's timeout bounds it.
 *
 * With nodes that failed earlier in the run (`ignoreNodes`), a rolling update can stall: the
 * failed node's new pod never becomes available and uses up `maxUnavailable`, so healthy nodes
 * keep their old pod. kubemend then restarts the old pods on healthy nodes itself, one at a time
 * and only while the others are Ready (a graceful delete; the controller recreates each from the
 * new template), and the rollout counts as done when every healthy node runs an updated, Ready
 * pod.
 */
export async function waitDaemonSetRollout(
  k: KubeClients,
  input: DaemonSetTarget & WaitInput,
): Promise<StepResult> {
  const { namespace, name } = input;
  const what = `daemonset/${namespace}/${name}`;
  const ignored = new Set(input.ignoreNodes ?? []);
  const actions: Action[] = [];
  const progress = await pollUntil(input.timeoutMs, what, async () => {
    const ds = await api(`read ${what}`, () => k.apps.readNamespacedDaemonSet({ namespace, name }));
    if (ignored.size > 0) return rollPastFailedNodes(k, ds, ignored, input.step, actions);
    const s = ds.status;
    return {
      done: daemonSetRolledOut(ds),
      progress: `${s?.updatedNumberScheduled ?? 0}/${s?.desiredNumberScheduled ?? 0} updated, ${s?.numberAvailable ?? 0} available`,
    };
  });
  log.info('DaemonSet rolled out', { namespace, daemonset: name, progress });
  return { ...waitResult(progress), changed: actions.map((a) => a.target), actions };
}

async function rollPastFailedNodes(
  k: KubeClients,
  ds: V1DaemonSet,
  ignored: Set<string>,
  step: string,
  actions: Action[],
): Promise<Probe> {
  const namespace = ds.metadata?.namespace ?? '';
  const token = ds.spec?.template.metadata?.annotations?.[RESTART_TOKEN];
  const labelSelector = Object.entries(ds.spec?.selector.matchLabels ?? {})
    .map(([key, value]) => `${key}=${value}`)
    .join(',');
  const list = await api(`list pods of daemonset ${ds.metadata?.name}`, () =>
    k.core.listNamespacedPod({ namespace, labelSelector }),
  );
  const pods = list.items.filter(
    (p) =>
      p.metadata?.ownerReferences?.some((o) => o.uid === ds.metadata?.uid) &&
      !ignored.has(p.spec?.nodeName ?? ''),
  );
  // TODO(rollout): without a kubemend restart token (a rollout started elsewhere) every pod counts
  // as updated; comparing controller-revision-hash with the newest ControllerRevision would not.
  const updated = (p: V1Pod): boolean => p.metadata?.annotations?.[RESTART_TOKEN] === token;
  const need = Math.max(0, (ds.status?.desiredNumberScheduled ?? 0) - ignored.size);
  const good = pods.filter((p) => updated(p) && podReady(p)).length;
  const progress = `${good}/${need} healthy nodes updated and Ready (not counting ${[...ignored].join(', ')})`;
  if (good >= need) return { done: true, progress };
  const old = pods.find((p) => !updated(p) && !p.metadata?.deletionTimestamp);
  if (old && pods.every(podReady)) {
    const pod = old.metadata?.name ?? '';
    await withRetries(`delete pod ${namespace}/${pod}`, () =>
      k.core.deleteNamespacedPod({
        namespace,
        name: pod,
        body: { preconditions: { uid: old.metadata?.uid } },
      }),
    ).catch((e: unknown) =>
      isCode(e, 404) || isCode(e, 409) ? undefined : translate(e, `delete pod ${namespace}/${pod}`),
    );
    log.info('Restarted an old DaemonSet pod past failed nodes', {
      namespace,
      pod,
      node: old.spec?.nodeName,
    });
    actions.push({
      kind: 'pod.delete',
      target: `pod/${namespace}/${pod}`,
      at: new Date().toISOString(),
      result: 'ok',
      step,
      details: { node: old.spec?.nodeName, why: 'rollout stalled by failed nodes' },
    });
  }
  return { done: false, progress };
}

function podReady(pod: V1Pod): boolean {
  if (pod.metadata?.deletionTimestamp) return false;
  if (pod.status?.phase === 'Succeeded') return true;
  return (
    pod.status?.phase === 'Running' &&
    !!pod.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')
  );
}

/** `k8s.waitPodsReady`: polls until every pod of the namespaces is Ready (or Succeeded). */
export async function waitPodsReady(
  k: KubeClients,
  input: WaitPodsReadyInput,
): Promise<StepResult> {
  const ignored = new Set(input.ignoreNodes ?? []);
  const what = `pods in ${input.namespaces.join(', ')}`;
  const progress = await pollUntil(input.timeoutMs, what, async () => {
    const pods = (await Promise.all(input.namespaces.map((ns) => listAllPods(k, ns))))
      .flat()
      .filter((p) => !ignored.has(p.spec?.nodeName ?? ''));
    const notReady = pods
      .filter((p) => !podReady(p))
      .map((p) => `${p.metadata?.namespace}/${p.metadata?.name}`);
    return {
      done: notReady.length === 0,
      progress:
        notReady.length === 0
          ? `${pods.length} pods Ready`
          : `${notReady.length} of ${pods.length} pods not Ready: ${notReady.slice(0, 10).join(', ')}`,
    };
  });
  log.info('All pods Ready', { namespaces: input.namespaces, progress });
  return waitResult(
    ignored.size > 0
      ? `${progress} (pods on failed nodes ${[...ignored].join(', ')} not counted)`
      : progress,
  );
}

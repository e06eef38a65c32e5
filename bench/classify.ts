/**
 * Benchmark: the stuck-pod classification over a large namespace (10k pods, 20k events), the
 * pure part of `k8s.findStuckPods`. Prints one JSON line.
 */
import type { CoreV1Event, V1Pod } from '@kubernetes/client-node';
import { classifyPod } from '../activities/stuck-pods.js';

const PODS = Number(process.env.PODS ?? 10_000);
const now = Date.now();
const evidence =
  /plugin type="calico" failed \((add|delete)\).*connection is unauthorized: Unauthorized/;
const message =
  'Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for sandbox "x": ' +
  'plugin type="calico" failed (add): error getting ClusterInformation: connection is unauthorized: Unauthorized';

const pods: V1Pod[] = [];
const events = new Map<string, CoreV1Event[]>();
for (let i = 0; i < PODS; i++) {
  const uid = `uid-${i}`;
  const stuck = i % 3 === 0;
  pods.push({
    metadata: {
      name: `p-${i}`,
      namespace: 'apps',
      uid,
      creationTimestamp: new Date(now - 600_000),
      ownerReferences: [
        { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'rs', uid: 'rs', controller: true },
      ],
    },
    spec: { nodeName: `node-${i % 50}`, containers: [{ name: 'c' }] },
    status: stuck
      ? {
          phase: 'Pending',
          containerStatuses: [
            {
              name: 'c',
              image: 'i',
              imageID: '',
              ready: false,
              restartCount: 0,
              state: { waiting: { reason: 'ContainerCreating' } },
            },
          ],
        }
      : { phase: 'Running' },
  });
  events.set(uid, [
    { metadata: {}, involvedObject: { uid }, reason: 'Pulled', message: 'image present' },
    {
      metadata: {},
      involvedObject: { uid },
      reason: 'FailedCreatePodSandBox',
      message: stuck ? message : 'other',
    },
  ]);
}

const rules = { allowlist: ['apps'], evidence, minStuckForMs: 30_000, now };
const heapBefore = process.memoryUsage().heapUsed;
const t0 = process.hrtime.bigint();
let stuck = 0;
for (const pod of pods) {
  if (classifyPod(pod, events.get(pod.metadata?.uid ?? '') ?? [], rules).kind === 'stuck') stuck++;
}
const ms = Number(process.hrtime.bigint() - t0) / 1e6;
console.log(
  JSON.stringify({
    bench: 'classify',
    pods: PODS,
    stuck,
    ms: Math.round(ms * 10) / 10,
    podsPerSecond: Math.round(PODS / (ms / 1000)),
    heapDeltaMiB: Math.round(((process.memoryUsage().heapUsed - heapBefore) / 2 ** 20) * 10) / 10,
  }),
);

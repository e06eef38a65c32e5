/**
 * Benchmark: the stuck-pod classification over a large namespace (10k pods, 20k events), the
 * pure part of `k8s.findStuckPods`. Prints one JSON line.
 */
import type { CoreV1Event, V1Pod } from '@kubernetes/client-node';
import { classifyPod } from '../activities/stuck-pods.js';
import { CALICO_EVIDENCE, CNI_ADD_MESSAGE, ownedPod, sandboxEvent } from '../test/support/pods.js';

const PODS = Number(process.env.PODS ?? 10_000);
const now = Date.now();

const pods: V1Pod[] = [];
const events = new Map<string, CoreV1Event[]>();
const created = new Date(now - 600_000);
for (let i = 0; i < PODS; i++) {
  const uid = `uid-${i}`;
  const stuck = i % 3 === 0;
  pods.push(
    ownedPod(created, {
      meta: { name: `p-${i}`, namespace: 'apps', uid },
      spec: { nodeName: `node-${i % 50}` },
      status: stuck ? undefined : { phase: 'Running' },
    }),
  );
  events.set(uid, [
    { metadata: {}, involvedObject: { uid }, reason: 'Pulled', message: 'image present' },
    sandboxEvent(uid, stuck ? CNI_ADD_MESSAGE : 'other'),
  ]);
}

const rules = { allowlist: ['apps'], evidence: CALICO_EVIDENCE, minStuckForMs: 30_000, now };
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

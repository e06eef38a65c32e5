/**
 * Pure builders for what the simulated kubelet writes: Node objects and status, pod statuses
 * (Running, ContainerCreating, CrashLoopBackOff), and the exact event messages of the incident.
 */
import { createHash } from 'node:crypto';

import { kubeTime } from './kube-http.js';
import type { KubeObject } from './kube-http.js';
import type { Container, Pod } from './kube-types.js';

const CLUSTER_INFO_UNAUTHORIZED =
  'error getting ClusterInformation: connection is unauthorized: Unauthorized';

/** The error Calico's CNI plugin returns on ADD with an expired token. */
export const CALICO_ADD_UNAUTHORIZED =
  'plugin type="calico" failed (add): ' + CLUSTER_INFO_UNAUTHORIZED;

/** The error Calico's CNI plugin returns on DEL with an expired token. */
export const CALICO_DELETE_UNAUTHORIZED =
  'plugin type="calico" failed (delete): ' + CLUSTER_INFO_UNAUTHORIZED;

/** Reason of the Warning event on a pod whose sandbox cannot be created. */
export const REASON_SANDBOX_FAILED = 'FailedCreatePodSandBox';
/** Reason of the Warning event on a pod whose sandbox cannot be torn down. */
export const REASON_KILL_FAILED = 'FailedKillPod';
/** Reason of the Warning event on a calico-node pod that crashes on a skewed clock. */
export const REASON_BACKOFF = 'BackOff';

/** Deterministic 64-hex sandbox id of a pod. */
export function sandboxId(uid: string): string {
  return createHash('sha256').update(`sandbox/${uid}`).digest('hex');
}

/** Message of the FailedCreatePodSandBox event, exactly as kubelet words it. */
export function sandboxFailedMessage(uid: string): string {
  return (
    'Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for ' +
    `sandbox "${sandboxId(uid)}": ${CALICO_ADD_UNAUTHORIZED}`
  );
}

/** Message of the FailedKillPod event. */
export function killFailedMessage(uid: string): string {
  return (
    `error killing pod: failed to "KillPodSandbox" for "${uid}" with KillPodSandboxError: ` +
    '"rpc error: code = Unknown desc = failed to destroy network for sandbox ' +
    `"${sandboxId(uid)}": ` +
    `${CALICO_DELETE_UNAUTHORIZED}"`
  );
}

/** `name_namespace(uid)`, as kubelet refers to pods. */
const podRef = (pod: Pod): string =>
  `${pod.metadata.name}_${pod.metadata.namespace ?? ''}(${pod.metadata.uid})`;

/** Message of the BackOff event of a calico-node pod on a node whose clock is skewed. */
export function x509BackoffMessage(pod: Pod, nodeNowMs: number, notBefore: string): string {
  return (
    `Back-off restarting failed container calico-node in pod ${podRef(pod)}: ` +
    'x509: certificate has expired or is not yet valid: ' +
    `current time ${kubeTime(nodeNowMs)} is before ${notBefore}`
  );
}

/** A simulated node as the simulator knows it. */
export interface SimNode {
  name: string;
  index: number;
  address: string;
  dir: string;
}

const RESOURCES = { cpu: '8', memory: '32Gi', pods: '110', 'ephemeral-storage': '100Gi' };

/** Node conditions; Ready depends on the container runtime. */
export function nodeConditions(
  runtimeUp: boolean,
  readySince: string,
  now = kubeTime(),
): KubeObject[] {
  const ok = (type: string, reason: string, message: string): KubeObject => ({
    type,
    status: 'False',
    reason,
    message,
    lastHeartbeatTime: now,
    lastTransitionTime: readySince,
  });
  return [
    ok('MemoryPressure', 'KubeletHasSufficientMemory', 'kubelet has sufficient memory available'),
    ok('DiskPressure', 'KubeletHasNoDiskPressure', 'kubelet has no disk pressure'),
    ok('PIDPressure', 'KubeletHasSufficientPID', 'kubelet has sufficient PID available'),
    {
      type: 'Ready',
      status: runtimeUp ? 'True' : 'False',
      reason: runtimeUp ? 'KubeletReady' : 'KubeletNotReady',
      message: runtimeUp ? 'kubelet is posting ready status' : 'container runtime is down',
      lastHeartbeatTime: now,
      lastTransitionTime: readySince,
    },
  ];
}

/** The Node object kubelet registers. */
export function nodeObject(node: SimNode, now = kubeTime()): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: node.name,
      labels: {
        'kubernetes.io/hostname': node.name,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': 'amd64',
        'kubemend.test/sim': 'true',
      },
    },
    spec: { podCIDR: `10.244.${node.index}.0/24`, podCIDRs: [`10.244.${node.index}.0/24`] },
    status: {
      capacity: RESOURCES,
      allocatable: RESOURCES,
      conditions: nodeConditions(true, now, now),
      addresses: [
        { type: 'InternalIP', address: node.address },
        { type: 'Hostname', address: node.name },
      ],
      daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
      nodeInfo: {
        machineID: createHash('md5').update(node.name).digest('hex'),
        systemUUID: createHash('md5').update(`uuid/${node.name}`).digest('hex'),
        bootID: createHash('md5').update(`boot/${node.name}`).digest('hex'),
        kernelVersion: '6.12.0-kubemend-bed',
        osImage: 'Debian GNU/Linux 13 (trixie)',
        containerRuntimeVersion: 'containerd://1.7.24',
        kubeletVersion: 'v1.34.4',
        kubeProxyVersion: '',
        operatingSystem: 'linux',
        architecture: 'amd64',
      },
    },
  };
}

function podConditions(ready: boolean, sandboxReady: boolean, now: string): KubeObject[] {
  const cond = (type: string, status: boolean, reason?: string): KubeObject => ({
    type,
    status: status ? 'True' : 'False',
    lastProbeTime: null,
    lastTransitionTime: now,
    ...(reason && !status ? { reason } : {}),
  });
  return [
    cond('PodReadyToStartContainers', sandboxReady),
    cond('Initialized', true),
    cond('Ready', ready, 'ContainersNotReady'),
    cond('ContainersReady', ready, 'ContainersNotReady'),
    cond('PodScheduled', true),
  ];
}

const containerId = (uid: string, name: string): string =>
  'containerd://' + createHash('sha256').update(`ctr/${uid}/${name}`).digest('hex');

const imageId = (image: string): string =>
  `${image.split(':')[0]}@sha256:${createHash('sha256').update(image).digest('hex')}`;

function initStatuses(pod: Pod, now: string): KubeObject[] | undefined {
  const inits: Container[] = pod.spec.initContainers ?? [];
  if (inits.length === 0) return undefined;
  return inits.map((c) => ({
    name: c.name,
    image: c.image,
    imageID: imageId(c.image),
    containerID: containerId(pod.metadata.uid, c.name),
    ready: true,
    restartCount: 0,
    started: false,
    state: { terminated: { exitCode: 0, reason: 'Completed', startedAt: now, finishedAt: now } },
  }));
}

/** Status of a pod whose sandbox and containers are up. */
export function runningStatus(
  pod: Pod,
  hostIP: string,
  podIP: string,
  restarts = 0,
  now = kubeTime(),
): KubeObject {
  const containers: Container[] = pod.spec.containers ?? [];
  return {
    phase: 'Running',
    conditions: podConditions(true, true, now),
    hostIP,
    hostIPs: [{ ip: hostIP }],
    podIP,
    podIPs: [{ ip: podIP }],
    startTime: pod.status?.startTime ?? now,
    initContainerStatuses: initStatuses(pod, now),
    containerStatuses: containers.map((c) => ({
      name: c.name,
      image: c.image,
      imageID: imageId(c.image),
      containerID: containerId(pod.metadata.uid, c.name),
      ready: true,
      started: true,
      restartCount: restarts,
      state: { running: { startedAt: now } },
      lastState: {},
    })),
  };
}

/** Status of a pod whose sandbox cannot be created: Pending, containers ContainerCreating. */
export function creatingStatus(pod: Pod, hostIP: string, now = kubeTime()): KubeObject {
  const containers: Container[] = pod.spec.containers ?? [];
  return {
    phase: 'Pending',
    conditions: podConditions(false, false, now),
    hostIP,
    hostIPs: [{ ip: hostIP }],
    startTime: pod.status?.startTime ?? now,
    containerStatuses: containers.map((c) => ({
      name: c.name,
      image: c.image,
      imageID: '',
      ready: false,
      started: false,
      restartCount: 0,
      state: { waiting: { reason: 'ContainerCreating' } },
      lastState: {},
    })),
  };
}

/** Status of a calico-node pod that keeps crashing (x509 errors on a skewed clock). */
export function crashLoopStatus(
  pod: Pod,
  hostIP: string,
  restarts: number,
  message: string,
  now = kubeTime(),
): KubeObject {
  const containers: Container[] = pod.spec.containers ?? [];
  return {
    phase: 'Running',
    conditions: podConditions(false, true, now),
    hostIP,
    hostIPs: [{ ip: hostIP }],
    podIP: hostIP,
    podIPs: [{ ip: hostIP }],
    startTime: pod.status?.startTime ?? now,
    initContainerStatuses: initStatuses(pod, now),
    containerStatuses: containers.map((c) => ({
      name: c.name,
      image: c.image,
      imageID: imageId(c.image),
      containerID: containerId(pod.metadata.uid, c.name),
      ready: false,
      started: false,
      restartCount: restarts,
      state: {
        waiting: {
          reason: 'CrashLoopBackOff',
          message: `back-off 10s restarting failed container=${c.name} pod=${podRef(pod)}`,
        },
      },
      lastState: {
        terminated: { exitCode: 1, reason: 'Error', message, startedAt: now, finishedAt: now },
      },
    })),
  };
}

/** A core/v1 Warning event from kubelet on `node` about `pod`. */
export function podEvent(
  pod: Pod,
  node: string,
  reason: string,
  message: string,
  name: string,
  now = kubeTime(),
): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { name, namespace: pod.metadata.namespace },
    involvedObject: {
      apiVersion: 'v1',
      kind: 'Pod',
      namespace: pod.metadata.namespace,
      name: pod.metadata.name,
      uid: pod.metadata.uid,
      resourceVersion: pod.metadata.resourceVersion,
    },
    reason,
    message,
    type: 'Warning',
    source: { component: 'kubelet', host: node },
    reportingComponent: 'kubelet',
    reportingInstance: node,
    firstTimestamp: now,
    lastTimestamp: now,
    count: 1,
  };
}

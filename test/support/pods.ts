/**
 * Pod and event objects for pure-logic tests and benchmarks of the stuck-pod definition.
 */
import type { CoreV1Event, V1Pod, V1PodStatus } from '@kubernetes/client-node';

export const CALICO_EVIDENCE =
  /plugin type="calico" failed \((add|delete)\).*connection is unauthorized: Unauthorized/;

export const CNI_ADD_MESSAGE =
  'Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for sandbox "ab": ' +
  'plugin type="calico" failed (add): error getting ClusterInformation: connection is unauthorized: Unauthorized';

/** A Pending status whose one container waits with `reason`. */
export function waitingStatus(reason: string): V1PodStatus {
  return {
    phase: 'Pending',
    containerStatuses: [
      {
        name: 'c',
        image: 'i',
        imageID: '',
        ready: false,
        restartCount: 0,
        state: { waiting: { reason } },
      },
    ],
  };
}

export interface PodOverrides {
  meta?: Partial<NonNullable<V1Pod['metadata']>>;
  spec?: Partial<NonNullable<V1Pod['spec']>>;
  status?: V1PodStatus;
}

/** A ReplicaSet-owned pod on node-1, created at `created`, in ContainerCreating unless overridden. */
export function ownedPod(created: Date, o: PodOverrides = {}): V1Pod {
  return {
    metadata: {
      name: 'p',
      namespace: 'kserve',
      uid: 'uid-1',
      creationTimestamp: created,
      ownerReferences: [
        { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'rs', uid: 'rs-1', controller: true },
      ],
      ...o.meta,
    },
    spec: { nodeName: 'node-1', containers: [{ name: 'c' }], ...o.spec },
    status: o.status ?? waitingStatus('ContainerCreating'),
  };
}

/** A FailedCreatePodSandBox event about the pod with `uid`. */
export function sandboxEvent(uid: string, message = CNI_ADD_MESSAGE): CoreV1Event {
  return {
    metadata: {},
    involvedObject: { kind: 'Pod', uid },
    reason: 'FailedCreatePodSandBox',
    message,
  };
}

/** The few fields of Kubernetes objects the bed reads, as plain JSON shapes. */

/** Object metadata. */
export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid: string;
  resourceVersion?: string;
  generation?: number;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  finalizers?: string[];
}

/** A container of a pod spec. */
export interface Container {
  name: string;
  image: string;
}

/** A status condition. */
export interface Condition {
  type: string;
  status: string;
}

/** A pod as the bed reads it. */
export interface Pod {
  metadata: ObjectMeta;
  spec: {
    nodeName?: string;
    hostNetwork?: boolean;
    containers: Container[];
    initContainers?: Container[];
  };
  status?: {
    phase?: string;
    podIP?: string;
    startTime?: string;
    conditions?: Condition[];
    containerStatuses?: { name: string; ready?: boolean; restartCount?: number }[];
  };
}

/** A Deployment or DaemonSet as the bed reads it. */
export interface Workload {
  metadata: ObjectMeta;
  spec: { replicas?: number };
  status?: {
    availableReplicas?: number;
    updatedReplicas?: number;
    desiredNumberScheduled?: number;
    numberReady?: number;
  };
}

/** A core/v1 Event as the bed reads it. */
export interface CoreEvent {
  metadata: ObjectMeta;
  involvedObject: { uid: string; name: string };
  reason: string;
}

/** A node as the bed reads it. */
export interface NodeObj {
  metadata: ObjectMeta;
  status?: { conditions?: Condition[] };
}

/** A list response. */
export interface List<T> {
  metadata: { resourceVersion: string };
  items: T[];
}

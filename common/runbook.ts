/**
 * The runbook format: a declarative list of typed recovery steps, validated with zod before
 * anything runs. Pure module, shared by the CLI, the workflow and the activities.
 */
import { z } from 'zod';

const DURATION = /^(\d+)(ms|s|m|h|d)$/;
const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** A duration written like `30s`, `5m`, `96h`. */
export const DurationSchema = z
  .string()
  .regex(DURATION, 'a duration such as 500ms, 30s, 5m, 2h or 1d');

/** Converts a validated duration string to milliseconds. */
export function durationMs(value: string): number {
  const match = DURATION.exec(value);
  if (!match) throw new TypeError(`not a duration: ${value}`);
  return Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS];
}

const IdSchema = z
  .string()
  .regex(/^[a-z][a-zA-Z0-9-]*$/, 'a step id: a letter, then letters, digits, -');
const K8sName = z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'a Kubernetes name');
const UnitName = z.string().regex(/^[a-zA-Z0-9@._-]+$/, 'a systemd unit name');

/** Which nodes a node step acts on: every node, or the ones an earlier step flagged or changed. */
export const NodeSelectorSchema = z.union([
  z.literal('all'),
  z.strictObject({ flaggedBy: IdSchema }),
  z.strictObject({ changedBy: IdSchema }),
]);
export type NodeSelector = z.infer<typeof NodeSelectorSchema>;

/** A condition on earlier steps' results; a step whose condition is false is skipped. */
export type Condition =
  { flagged: string } | { changed: string } | { any: Condition[] } | { all: Condition[] };
export const ConditionSchema: z.ZodType<Condition> = z.lazy(() =>
  z.union([
    z.strictObject({ flagged: IdSchema }),
    z.strictObject({ changed: IdSchema }),
    z.strictObject({ any: z.array(ConditionSchema).min(1) }),
    z.strictObject({ all: z.array(ConditionSchema).min(1) }),
  ]),
);

const RetrySchema = z.strictObject({
  maximumAttempts: z.number().int().min(1).max(100).default(5),
  initialInterval: DurationSchema.default('1s'),
  maximumInterval: DurationSchema.default('30s'),
});

const common = {
  id: IdSchema,
  description: z.string().optional(),
  when: ConditionSchema.optional(),
  timeout: DurationSchema.default('2m'),
  retry: RetrySchema.default({ maximumAttempts: 5, initialInterval: '1s', maximumInterval: '30s' }),
};
const nodeStep = { ...common, nodes: NodeSelectorSchema.default('all') };

const NamespacesSchema = z.array(K8sName).min(1);

/** Every step type the engine knows, each with its own typed `with` block. */
export const StepSchema = z.discriminatedUnion('type', [
  z.strictObject({
    ...nodeStep,
    type: z.literal('node.measureClock'),
    with: z.strictObject({ maxSkew: DurationSchema.default('2s') }).default({ maxSkew: '2s' }),
  }),
  z.strictObject({
    ...nodeStep,
    type: z.literal('node.syncClock'),
    with: z
      .strictObject({
        maxSkew: DurationSchema.default('2s'),
        ntpServer: z
          .string()
          .regex(/^[a-zA-Z0-9.:-]+$/, 'a host name or address')
          .default('pool.ntp.org'),
      })
      .default({ maxSkew: '2s', ntpServer: 'pool.ntp.org' }),
  }),
  z.strictObject({
    ...nodeStep,
    type: z.literal('node.restartUnit'),
    with: z.strictObject({ unit: UnitName }),
  }),
  z.strictObject({
    ...common,
    type: z.literal('approval'),
    /** How long to wait for a decision; no decision in time counts as a rejection. */
    timeout: DurationSchema.default('1h'),
    with: z.strictObject({ message: z.string().min(1) }),
  }),
  z.strictObject({
    ...common,
    type: z.literal('k8s.findStuckPods'),
    with: z.strictObject({
      namespaces: NamespacesSchema,
      /** Regular expression an event message must match to count as evidence. */
      evidence: z.string().min(1),
      minStuckFor: DurationSchema.default('30s'),
    }),
  }),
  z.strictObject({
    ...common,
    type: z.literal('k8s.forceDeletePods'),
    with: z.strictObject({ podsFrom: IdSchema, batchSize: z.number().int().min(1).default(20) }),
  }),
  z.strictObject({
    ...common,
    type: z.literal('k8s.rolloutRestart'),
    with: z.strictObject({ kind: z.literal('DaemonSet'), namespace: K8sName, name: K8sName }),
  }),
  z.strictObject({
    ...common,
    type: z.literal('k8s.waitRollout'),
    with: z.strictObject({ kind: z.literal('DaemonSet'), namespace: K8sName, name: K8sName }),
  }),
  z.strictObject({
    ...common,
    type: z.literal('k8s.waitPodsReady'),
    with: z.strictObject({ namespaces: NamespacesSchema }),
  }),
]);
export type Step = z.infer<typeof StepSchema>;
export type StepType = Step['type'];

const ParameterSchema = z.strictObject({
  description: z.string().optional(),
  default: z.union([z.string(), z.number(), z.boolean(), z.array(z.string())]),
});

/** The whole runbook file. */
export const RunbookSchema = z.strictObject({
  apiVersion: z.literal('kubemend.io/v1alpha1'),
  kind: z.literal('Runbook'),
  metadata: z.strictObject({ name: K8sName, description: z.string().optional() }),
  spec: z.strictObject({
    parameters: z.record(z.string(), ParameterSchema).default({}),
    /** Namespaces the runbook may change; anything elsewhere is reported, never touched. */
    allowlist: NamespacesSchema,
    limits: z
      .strictObject({
        maxPodDeletes: z.number().int().min(0).default(50),
        maxNodes: z.number().int().min(1).default(20),
        maxNodeFailures: z.number().int().min(0).default(1),
        nodeParallelism: z.number().int().min(1).max(50).default(5),
        /** How long a run crossing a limit waits for approval before it stops. */
        approvalTimeout: DurationSchema.default('1h'),
      })
      .default({
        maxPodDeletes: 50,
        maxNodes: 20,
        maxNodeFailures: 1,
        nodeParallelism: 5,
        approvalTimeout: '1h',
      }),
    steps: z.array(StepSchema).min(1),
  }),
});
export type Runbook = z.infer<typeof RunbookSchema>;
export type RunbookLimits = Runbook['spec']['limits'];

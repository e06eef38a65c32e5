/**
 * Scenario files (`test/bed/scenarios/*.yaml`): nodes, Kubernetes objects, the suspend and the
 * resume disruption that break the cluster. The first YAML document is the scenario; further
 * documents (and `kind: List` items) are added to `objects`. Validated with zod; every error
 * names the file and the field.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { z } from 'zod';

import { parseDuration } from './duration.js';
import { BED_SRC } from './tools.js';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

const DurationSchema = z.string().refine((s) => {
  try {
    parseDuration(s);
    return true;
  } catch {
    return false;
  }
}, 'not a duration (use e.g. 96h, 1h30m, 45s, 4d)');

const NodeSchema = z
  .object({
    name: z.string().regex(DNS_LABEL, 'must be a DNS label (lowercase letters, digits, -)'),
    timeSync: z.enum(['chrony', 'systemd-timesyncd', 'ntpdate']),
  })
  .strict();

const ManifestSchema = z.looseObject({
  apiVersion: z.string().min(1),
  kind: z.string().min(1),
  metadata: z.looseObject({ name: z.string().min(1), namespace: z.string().optional() }),
});

/** Schema of a scenario file's first document. */
export const ScenarioSchema = z
  .object({
    apiVersion: z.literal('kubemend.io/v1alpha1'),
    kind: z.literal('BedScenario'),
    name: z.string().regex(DNS_LABEL, 'must be a DNS label'),
    description: z.string().optional(),
    nodes: z.array(NodeSchema).min(1).max(200),
    /** Lifetime of CNI tokens calico-node issues. */
    cniTokenTtl: DurationSchema.default('24h'),
    objects: z.array(ManifestSchema).default([]),
    suspend: z
      .object({
        duration: DurationSchema,
        /** Suspended nodes (default: all). */
        nodes: z.array(z.string()).optional(),
        /** How long before the suspend the node's CNI token was issued. */
        tokenIssuedBefore: DurationSchema.default('1h'),
      })
      .strict()
      .optional(),
    resume: z
      .object({
        /** Namespaces whose pods restart after resume (deleted gracefully). */
        restartNamespaces: z.array(z.string().regex(DNS_LABEL)).default([]),
      })
      .strict()
      .optional(),
    timeouts: z
      .object({ ready: DurationSchema.default('120s'), broken: DurationSchema.default('90s') })
      .strict()
      .default({ ready: '120s', broken: '90s' }),
  })
  .strict()
  .superRefine(checkCrossFields);

type RawScenario = z.output<typeof ScenarioSchema>;

function checkCrossFields(s: Omit<RawScenario, never>, ctx: z.RefinementCtx): void {
  const names = s.nodes.map((n) => n.name);
  names.forEach((n, i) => {
    if (names.indexOf(n) !== i)
      ctx.addIssue({
        code: 'custom',
        path: ['nodes', i, 'name'],
        message: `duplicate node '${n}'`,
      });
  });
  s.suspend?.nodes?.forEach((n, i) => {
    if (!names.includes(n))
      ctx.addIssue({
        code: 'custom',
        path: ['suspend', 'nodes', i],
        message: `unknown node '${n}'`,
      });
  });
  if (!s.suspend) return;
  const ttl = parseDuration(s.cniTokenTtl);
  const before = parseDuration(s.suspend.tokenIssuedBefore);
  const duration = parseDuration(s.suspend.duration);
  if (ttl <= before || ttl - before >= duration) {
    ctx.addIssue({
      code: 'custom',
      path: ['suspend', 'duration'],
      message:
        `the CNI token (ttl ${s.cniTokenTtl}, issued ${s.suspend.tokenIssuedBefore} before ` +
        'the suspend) must expire during the suspend',
    });
  }
}

/** A Kubernetes manifest from a scenario. */
export type Manifest = z.output<typeof ManifestSchema>;

/** A loaded, validated scenario with durations in seconds. */
export interface Scenario {
  name: string;
  file: string;
  description?: string;
  nodes: { name: string; timeSync: 'chrony' | 'systemd-timesyncd' | 'ntpdate' }[];
  objects: Manifest[];
  cniTokenTtlSeconds: number;
  suspend?: { durationSeconds: number; nodes: string[]; tokenIssuedBeforeSeconds: number };
  restartNamespaces: string[];
  readyTimeoutMs: number;
  brokenTimeoutMs: number;
}

/** Scenario files shipped with the bed. */
export function listScenarios(): string[] {
  return readdirSync(join(BED_SRC, 'scenarios'))
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => basename(f, '.yaml'));
}

/** Resolves `seed` to the shipped file, or a path to itself. */
export function scenarioPath(nameOrPath: string): string {
  if (/[/\\]|\.ya?ml$/.test(nameOrPath)) return resolve(nameOrPath);
  const file = join(BED_SRC, 'scenarios', `${nameOrPath}.yaml`);
  if (!existsSync(file))
    throw new Error(`unknown scenario '${nameOrPath}' (known: ${listScenarios().join(', ')})`);
  return file;
}

function formatIssues(file: string, issues: z.core.$ZodIssue[]): string {
  const lines = issues.map(
    (i) =>
      `  ${
        i.path
          .map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))
          .join('')
          .replace(/^\./, '') || '(root)'
      }: ${i.message}`,
  );
  return `invalid scenario ${file}:\n${lines.join('\n')}`;
}

/** Flattens `kind: List` manifests into their items. */
function flatten(docs: unknown[]): unknown[] {
  return docs.flatMap((d) => {
    const o = d as { kind?: string; items?: unknown[] } | null;
    return o && o.kind === 'List' && Array.isArray(o.items) ? o.items : [d];
  });
}

/**
 * Parses and validates a scenario given its text.
 * @throws Error naming `file` and each invalid field.
 */
export function parseScenario(text: string, file: string): Scenario {
  const docs = parseAllDocuments(text);
  const errors = docs.flatMap((d) => d.errors.map((e) => e.message));
  if (errors.length > 0) throw new Error(`invalid YAML in ${file}: ${errors.join('; ')}`);
  const [head, ...rest] = docs.map((d) => d.toJS() as unknown).filter((d) => d != null);
  const raw = { ...(head as object) } as Record<string, unknown>;
  raw.objects = flatten([...((raw.objects as unknown[] | undefined) ?? []), ...rest]);
  const parsed = ScenarioSchema.safeParse(raw);
  if (!parsed.success) throw new Error(formatIssues(file, parsed.error.issues));
  return toScenario(parsed.data, file);
}

function toScenario(s: RawScenario, file: string): Scenario {
  return {
    name: s.name,
    file,
    description: s.description,
    nodes: s.nodes,
    objects: s.objects,
    cniTokenTtlSeconds: parseDuration(s.cniTokenTtl),
    suspend: s.suspend && {
      durationSeconds: parseDuration(s.suspend.duration),
      nodes: s.suspend.nodes ?? s.nodes.map((n) => n.name),
      tokenIssuedBeforeSeconds: parseDuration(s.suspend.tokenIssuedBefore),
    },
    restartNamespaces: s.resume?.restartNamespaces ?? [],
    readyTimeoutMs: parseDuration(s.timeouts.ready) * 1000,
    brokenTimeoutMs: parseDuration(s.timeouts.broken) * 1000,
  };
}

/** Loads a scenario by name (`seed`) or path. */
export function loadScenario(nameOrPath: string): Scenario {
  const file = scenarioPath(nameOrPath);
  return parseScenario(readFileSync(file, 'utf8'), file);
}

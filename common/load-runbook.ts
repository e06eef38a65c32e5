/**
 * Turns runbook text into a validated {@link Runbook}: parses YAML, applies parameters, checks
 * the schema and the references between steps. Every error names the file, the step and the
 * field. Pure: callers read the file.
 */
import { parse as parseYaml, YAMLParseError } from 'yaml';
import type { z } from 'zod';
import type { Condition, Runbook, Step } from './runbook.js';
import { RunbookSchema } from './runbook.js';

/** Thrown when a runbook or its parameters are invalid; `problems` lists each one. */
export class RunbookError extends Error {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`${file}: invalid runbook\n  - ${problems.join('\n  - ')}`);
    this.name = 'RunbookError';
  }
}

export type ParamValue = string | number | boolean | string[];
const PARAM_REF = /\{\{\s*params\.([a-zA-Z0-9_]+)\s*\}\}/g;
const WHOLE_PARAM_REF = /^\{\{\s*params\.([a-zA-Z0-9_]+)\s*\}\}$/;

/**
 * Parses and validates a runbook.
 * @param overrides parameter values given by the caller (CLI `--param`, webhook, schedule);
 *   strings are converted to the type of the parameter's default.
 */
export function loadRunbook(
  text: string,
  file: string,
  overrides: Record<string, unknown> = {},
): Runbook {
  const raw = parseText(text, file);
  const params = resolveParams(raw, file, overrides);
  const substituted = substitute(raw, params, file);
  const parsed = RunbookSchema.safeParse(substituted);
  if (!parsed.success) throw new RunbookError(file, describeIssues(parsed.error, substituted));
  const problems = checkReferences(parsed.data);
  if (problems.length > 0) throw new RunbookError(file, problems);
  return parsed.data;
}

function parseText(text: string, file: string): unknown {
  try {
    return parseYaml(text) as unknown;
  } catch (err) {
    const where = err instanceof YAMLParseError ? ` at line ${err.linePos?.[0].line ?? '?'}` : '';
    throw new RunbookError(file, [
      // The parser's message ends with a snippet of the offending lines: keep it.
      `not valid YAML${where}: ${(err as Error).message.trimEnd().replace(/\n/g, '\n      ')}`,
    ]);
  }
}

function resolveParams(
  raw: unknown,
  file: string,
  overrides: Record<string, unknown>,
): Record<string, ParamValue> {
  const declared = (raw as { spec?: { parameters?: unknown } } | null)?.spec?.parameters ?? {};
  if (typeof declared !== 'object' || declared === null) {
    throw new RunbookError(file, ['spec.parameters: must be a map of name to { default }']);
  }
  const values: Record<string, ParamValue> = {};
  const problems: string[] = [];
  for (const [name, def] of Object.entries(declared as Record<string, { default?: unknown }>)) {
    values[name] = def?.default as ParamValue;
  }
  for (const [name, value] of Object.entries(overrides)) {
    if (!(name in values)) {
      problems.push(
        `parameter ${name}: not declared in spec.parameters (known: ${Object.keys(values).join(', ') || 'none'})`,
      );
      continue;
    }
    const converted = convertParam(value, values[name]);
    if (converted === undefined) {
      problems.push(
        `parameter ${name}: ${JSON.stringify(value)} is not a ${describeType(values[name])}`,
      );
    } else {
      values[name] = converted;
    }
  }
  if (problems.length > 0) throw new RunbookError(file, problems);
  return values;
}

function describeType(sample: unknown): string {
  return Array.isArray(sample) ? 'list of strings' : typeof sample;
}

function convertParam(value: unknown, sample: unknown): ParamValue | undefined {
  if (Array.isArray(sample)) {
    if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value;
    if (typeof value === 'string')
      return value
        .split(',')
        .map((v) => v.trim())
        .filter(Boolean);
    return undefined;
  }
  if (typeof sample === 'number') {
    const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
    return typeof n === 'number' && Number.isFinite(n) ? n : undefined;
  }
  if (typeof sample === 'boolean') {
    if (typeof value === 'boolean') return value;
    if (value === 'true' || value === 'false') return value === 'true';
    return undefined;
  }
  return typeof value === 'string' ? value : undefined;
}

/** Replaces `{{ params.x }}` in every string below `spec.steps`. */
function substitute(raw: unknown, params: Record<string, ParamValue>, file: string): unknown {
  const problems: string[] = [];
  const walk = (node: unknown, path: string): unknown => {
    if (typeof node === 'string') return substituteString(node, params, path, problems);
    if (Array.isArray(node)) return node.flatMap((v, i) => spread(walk(v, `${path}[${i}]`), v));
    if (node !== null && typeof node === 'object') {
      return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, walk(v, `${path}.${k}`)]));
    }
    return node;
  };
  const spec = (raw as { spec?: { steps?: unknown } } | null)?.spec;
  if (!spec || spec.steps === undefined) return raw;
  const steps = walk(spec.steps, 'spec.steps');
  if (problems.length > 0) throw new RunbookError(file, problems);
  return { ...(raw as object), spec: { ...spec, steps } };
}

/** A list item that was exactly one list parameter expands into that list's items. */
function spread(value: unknown, original: unknown): unknown[] {
  return Array.isArray(value) && typeof original === 'string' ? value : [value];
}

function substituteString(
  text: string,
  params: Record<string, ParamValue>,
  path: string,
  problems: string[],
): unknown {
  const whole = WHOLE_PARAM_REF.exec(text);
  if (whole) {
    const name = whole[1] as string;
    if (!(name in params)) problems.push(`${path}: unknown parameter ${name}`);
    return params[name];
  }
  return text.replace(PARAM_REF, (_m, name: string) => {
    if (!(name in params)) problems.push(`${path}: unknown parameter ${name}`);
    const value = params[name];
    return Array.isArray(value) ? value.join(',') : String(value);
  });
}

function describeIssues(error: z.ZodError, data: unknown): string[] {
  return error.issues.map((issue) => `${describePath(issue.path, data)}: ${issue.message}`);
}

/** `spec.steps[2].with.maxSkew` becomes `step "sync" (spec.steps[2]) field with.maxSkew`. */
function describePath(path: PropertyKey[], data: unknown): string {
  const text = path.reduce<string>(
    (acc, key) =>
      typeof key === 'number' ? `${acc}[${key}]` : acc ? `${acc}.${String(key)}` : String(key),
    '',
  );
  if (path[0] !== 'spec' || path[1] !== 'steps' || typeof path[2] !== 'number') {
    return `field ${text || '(root)'}`;
  }
  const steps = (data as { spec: { steps: unknown[] } }).spec.steps;
  const id = (steps[path[2]] as { id?: unknown } | undefined)?.id;
  const field = path.slice(3).map(String).join('.') || '(step)';
  const name = typeof id === 'string' ? `step "${id}"` : 'step';
  return `${name} (spec.steps[${path[2]}]) field ${field}`;
}

/** Checks what the schema cannot: unique ids, references to earlier steps, the allowlist. */
function checkReferences(runbook: Runbook): string[] {
  const problems: string[] = [];
  const seen = new Map<string, Step>();
  const allow = new Set(runbook.spec.allowlist);
  runbook.spec.steps.forEach((step, i) => {
    const where = `step "${step.id}" (spec.steps[${i}])`;
    const ref = (id: string, field: string): Step | undefined => {
      const target = seen.get(id);
      if (!target) problems.push(`${where} field ${field}: no earlier step with id "${id}"`);
      return target;
    };
    if (seen.has(step.id)) problems.push(`${where} field id: duplicate id "${step.id}"`);
    if (step.when) conditionRefs(step.when).forEach((id) => ref(id, 'when'));
    if ('nodes' in step && step.nodes !== 'all') {
      const id = 'flaggedBy' in step.nodes ? step.nodes.flaggedBy : step.nodes.changedBy;
      const target = ref(id, 'nodes');
      if (target && !target.type.startsWith('node.')) {
        problems.push(`${where} field nodes: step "${id}" is not a node step`);
      }
    }
    if (step.type === 'k8s.forceDeletePods') {
      const target = ref(step.with.podsFrom, 'with.podsFrom');
      if (target && target.type !== 'k8s.findStuckPods') {
        problems.push(`${where} field with.podsFrom: step "${target.id}" is not k8s.findStuckPods`);
      }
    }
    for (const ns of namespacesOf(step)) {
      if (!allow.has(ns)) problems.push(`${where}: namespace ${ns} is not in spec.allowlist`);
    }
    if (step.type === 'k8s.findStuckPods') checkPattern(step.with.evidence, where, problems);
    seen.set(step.id, step);
  });
  return problems;
}

function conditionRefs(c: Condition): string[] {
  if ('flagged' in c) return [c.flagged];
  if ('changed' in c) return [c.changed];
  return ('any' in c ? c.any : c.all).flatMap(conditionRefs);
}

function namespacesOf(step: Step): string[] {
  switch (step.type) {
    case 'k8s.findStuckPods':
    case 'k8s.waitPodsReady':
      return step.with.namespaces;
    case 'k8s.rolloutRestart':
      return [step.with.namespace];
    default:
      return [];
  }
}

function checkPattern(pattern: string, where: string, problems: string[]): void {
  try {
    new RegExp(pattern);
  } catch (err) {
    problems.push(
      `${where} field with.evidence: not a regular expression (${(err as Error).message})`,
    );
  }
}

import { readFileSync } from 'node:fs';
import { loadRunbook, RunbookError } from '../../common/load-runbook.js';
import { durationMs } from '../../common/runbook.js';

const SEED = 'runbooks/calico-cni-token-recovery.yaml';
const seedText = readFileSync(SEED, 'utf8');

function problemsOf(text: string, params: Record<string, unknown> = {}): string[] {
  try {
    loadRunbook(text, 'rb.yaml', params);
  } catch (err) {
    if (err instanceof RunbookError) return err.problems;
    throw err;
  }
  throw new Error('expected the runbook to be rejected');
}

const minimal = (steps: string): string => `
apiVersion: kubemend.io/v1alpha1
kind: Runbook
metadata: { name: test }
spec:
  allowlist: [kube-system, apps]
  steps:
${steps}`;

describe('loadRunbook', () => {
  it('accepts the seed runbook and applies parameter defaults', () => {
    const rb = loadRunbook(seedText, SEED);

    expect(rb.metadata.name).toBe('calico-cni-token-recovery');
    const diagnose = rb.spec.steps[0];
    expect(diagnose?.type).toBe('k8s.findStuckPods');
    expect(diagnose?.type === 'k8s.findStuckPods' && diagnose.with.namespaces).toEqual([
      'cert-manager',
      'kserve',
      'istio-system',
    ]);
    expect(rb.spec.limits.maxPodDeletes).toBe(50);
  });

  it('converts string overrides to the declared parameter type', () => {
    const rb = loadRunbook(seedText, SEED, {
      namespaces: 'kserve, cert-manager',
      minStuckFor: '5s',
    });

    const diagnose = rb.spec.steps.find((s) => s.id === 'diagnose');
    expect(diagnose?.type === 'k8s.findStuckPods' && diagnose.with).toMatchObject({
      namespaces: ['kserve', 'cert-manager'],
      minStuckFor: '5s',
    });
  });

  it('rejects an undeclared parameter, naming it and the known ones', () => {
    const problems = problemsOf(seedText, { nope: '1' });

    expect(problems).toEqual([
      expect.stringMatching(/parameter nope: not declared .*known: namespaces, minStuckFor/),
    ]);
  });

  it('names the step and the field of a bad value', () => {
    const problems = problemsOf(
      minimal(`    - { id: sync, type: node.syncClock, with: { maxSkew: soon } }`),
    );

    expect(problems).toEqual([
      'step "sync" (spec.steps[0]) field with.maxSkew: a duration such as 500ms, 30s, 5m, 2h or 1d',
    ]);
  });

  it('rejects an unknown step type before anything runs', () => {
    const problems = problemsOf(minimal(`    - { id: boom, type: node.reboot }`));

    expect(problems[0]).toMatch(/^step "boom" \(spec\.steps\[0\]\) field type: /);
  });

  it('rejects unknown fields instead of ignoring them', () => {
    const problems = problemsOf(
      minimal(`    - { id: m, type: node.measureClock, nodes: all, tiemout: 5m }`),
    );

    expect(problems[0]).toMatch(/step "m" .*tiemout/);
  });

  it('rejects references to later or missing steps', () => {
    const problems = problemsOf(
      minimal(`    - { id: del, type: k8s.forceDeletePods, with: { podsFrom: find } }
    - { id: k, type: node.restartUnit, nodes: { changedBy: ghost }, with: { unit: kubelet } }`),
    );

    expect(problems).toEqual([
      'step "del" (spec.steps[0]) field with.podsFrom: no earlier step with id "find"',
      'step "k" (spec.steps[1]) field nodes: no earlier step with id "ghost"',
    ]);
  });

  it('refuses steps that act outside the allowlist', () => {
    const problems = problemsOf(
      minimal(
        `    - { id: r, type: k8s.rolloutRestart, with: { kind: DaemonSet, namespace: payments, name: x } }`,
      ),
    );

    expect(problems).toEqual([
      'step "r" (spec.steps[0]): namespace payments is not in spec.allowlist',
    ]);
  });

  it('rejects duplicate ids and bad evidence patterns', () => {
    const problems = problemsOf(
      minimal(`    - { id: a, type: node.measureClock }
    - { id: a, type: k8s.findStuckPods, with: { namespaces: [apps], evidence: '(' } }`),
    );

    expect(problems).toEqual([
      'step "a" (spec.steps[1]) field id: duplicate id "a"',
      expect.stringMatching(
        /^step "a" \(spec\.steps\[1\]\) field with\.evidence: not a regular expression/,
      ),
    ]);
  });

  it('reports YAML syntax errors with a line', () => {
    expect(problemsOf('spec: [unclosed')).toEqual([
      expect.stringMatching(/^not valid YAML at line 1/),
    ]);
  });

  it('rejects a parameter value of the wrong type', () => {
    const text = minimal(`    - { id: m, type: node.measureClock }`).replace(
      'spec:\n',
      'spec:\n  parameters:\n    n: { default: 3 }\n',
    );

    expect(problemsOf(text, { n: 'three' })).toEqual(['parameter n: "three" is not a number']);
  });
});

describe('durationMs', () => {
  it.each([
    ['500ms', 500],
    ['30s', 30_000],
    ['5m', 300_000],
    ['96h', 345_600_000],
    ['1d', 86_400_000],
  ])('reads %s as %d ms', (text, ms) => {
    expect(durationMs(text)).toBe(ms);
  });

  it('throws on anything else', () => {
    expect(() => durationMs('5 minutes')).toThrow(TypeError);
  });
});

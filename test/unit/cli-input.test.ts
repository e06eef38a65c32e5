/**
 * Bad input to the real CLI: a clear error naming the field, exit code 2, and nothing started
 * (no Temporal server, no run).
 */
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jest } from '@jest/globals';
import { kubemend } from '../support/cli.js';

// Each test starts the real CLI (tsx, Temporal and Kubernetes clients): seconds, not Jest's 5 s
// default, on a loaded 2-core machine.
jest.setTimeout(60_000);

describe('kubemend run with bad input', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kubemend-cli-'));
  const home = join(dir, 'home');
  const kubeconfig = join(dir, 'kubeconfig');
  const inventory = join(dir, 'inventory.yaml');
  writeFileSync(kubeconfig, 'apiVersion: v1\nkind: Config\n');
  writeFileSync(
    inventory,
    'apiVersion: kubemend.io/v1alpha1\nkind: Inventory\ncluster: c1\n' +
      'ssh: { identityFile: k, knownHostsFile: kh }\nnodes: [{ name: n1, address: 127.0.0.1 }]\n',
  );
  const env = { KUBEMEND_HOME: home, TEMPORAL_ADDRESS: '' };
  const run = (...args: string[]) =>
    kubemend(['run', ...args, '--kubeconfig', kubeconfig, '--inventory', inventory], env);

  afterEach(() => {
    expect(existsSync(join(home, 'server.json'))).toBe(false);
  });

  it('names the file, step and field of an invalid runbook', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(
      bad,
      'apiVersion: kubemend.io/v1alpha1\nkind: Runbook\nmetadata: { name: bad }\n' +
        'spec:\n  allowlist: [a]\n  steps:\n    - { id: sync, type: node.syncClock, with: { maxSkew: soon } }\n',
    );

    const result = await run(bad);

    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`${bad}: invalid runbook`);
    expect(result.stderr).toContain('step "sync" (spec.steps[0]) field with.maxSkew');
  });

  it('rejects an unknown runbook parameter', async () => {
    const result = await run('calico-cni-token-recovery', '--param', 'namespacez=a');

    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/parameter namespacez: not declared/);
  });

  it('names the inventory field that is wrong', async () => {
    writeFileSync(
      inventory,
      'apiVersion: kubemend.io/v1alpha1\nkind: Inventory\ncluster: C_1\nssh: {}\nnodes: []\n',
    );

    const result = await run('calico-cni-token-recovery');

    expect(result.code).toBe(2);
    expect(result.stderr).toContain('invalid inventory');
    expect(result.stderr).toContain('field cluster: a cluster name');
    expect(result.stderr).toContain('field ssh.identityFile');
    expect(result.stderr).toContain('field nodes');
  });
});

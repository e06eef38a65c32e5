import { jest } from '@jest/globals';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundleInputHash, workflowBundle } from '../../workers/bundle.js';
import { WORKFLOWS_PATH } from '../../workers/worker.js';

jest.setTimeout(120_000);

describe('bundleInputHash', () => {
  const root = mkdtempSync(join(tmpdir(), 'kubemend-hash-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('changes with any workflow or shared file and the lock file, and nothing else', () => {
    mkdirSync(join(root, 'workflows', 'nested'), { recursive: true });
    mkdirSync(join(root, 'common'));
    mkdirSync(join(root, 'activities'));
    writeFileSync(join(root, 'workflows', 'a.ts'), 'export const a = 1;\n');
    writeFileSync(join(root, 'common', 'b.ts'), 'export const b = 1;\n');
    const first = bundleInputHash(root);
    expect(bundleInputHash(root)).toBe(first);

    writeFileSync(join(root, 'activities', 'c.ts'), 'export const c = 1;\n');
    writeFileSync(join(root, 'README.md'), 'docs\n');
    expect(bundleInputHash(root)).toBe(first);

    const seen = new Set([first]);
    const changes: [string, string][] = [
      [join('workflows', 'nested', 'd.ts'), 'export const d = 1;\n'],
      [join('workflows', 'a.ts'), 'export const a = 2;\n'],
      [join('common', 'b.ts'), 'export const b = 2;\n'],
      ['package-lock.json', '{}\n'],
    ];
    for (const [file, content] of changes) {
      writeFileSync(join(root, file), content);
      const next = bundleInputHash(root);
      expect(seen.has(next)).toBe(false);
      seen.add(next);
    }
  });
});

describe('workflowBundle', () => {
  const cache = mkdtempSync(join(tmpdir(), 'kubemend-bundles-'));
  afterAll(() => rmSync(cache, { recursive: true, force: true }));

  it('bundles once, then hands out the cached file', async () => {
    const built = await workflowBundle(WORKFLOWS_PATH, cache);
    expect('code' in built && built.code).toContain('runRunbook');
    const files = readdirSync(cache);
    expect(files).toEqual([`workflows-${bundleInputHash()}.js`]);

    const again = await workflowBundle(WORKFLOWS_PATH, cache);
    expect(again).toEqual({ codePath: join(cache, files[0] ?? '') });
  });

  it('removes week-old bundles of other code versions when it writes one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kubemend-prune-'));
    const old = join(dir, 'workflows-0123456789abcdef01234567.js');
    const recent = join(dir, 'workflows-76543210fedcba9876543210.js');
    const other = join(dir, 'notes.txt');
    for (const f of [old, recent, other]) writeFileSync(f, '');
    const eightDaysAgo = new Date(Date.now() - 8 * 24 * 3_600_000);
    utimesSync(old, eightDaysAgo, eightDaysAgo);
    utimesSync(other, eightDaysAgo, eightDaysAgo);

    await workflowBundle(WORKFLOWS_PATH, dir);

    expect(readdirSync(dir).sort()).toEqual(
      [
        `workflows-${bundleInputHash()}.js`,
        'notes.txt',
        'workflows-76543210fedcba9876543210.js',
      ].sort(),
    );
    rmSync(dir, { recursive: true, force: true });
  });

  it('still returns the bundle when the cache cannot be written', async () => {
    const blocked = join(cache, 'not-a-dir');
    writeFileSync(blocked, '');
    const built = await workflowBundle(WORKFLOWS_PATH, blocked);
    expect('code' in built && built.code).toContain('runRunbook');
    expect(existsSync(join(blocked, `workflows-${bundleInputHash()}.js`))).toBe(false);
  });
});

/**
 * The workflow bundle, cached on disk by a hash of everything that goes into it, so a CLI run or
 * a restarted worker does not spend seconds re-running webpack over unchanged code.
 */
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleWorkflowCode, Runtime } from '@temporalio/worker';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/**
 * What the bundle is built from: the workflow code, the shared code it imports, and the
 * dependency versions (the lock file, or package.json where kubemend runs from a package).
 */
const INPUT_DIRS = ['workflows', 'common'];
const INPUT_FILES = ['package.json', 'package-lock.json'];
/** Bundles of other code versions are removed once this old (each is ~3 MB). */
const PRUNE_AFTER_MS = 7 * 24 * 3_600_000;

/** `$KUBEMEND_BUNDLE_DIR`, else `<XDG cache>/kubemend/bundles`, beside the tools cache. */
export function bundleCacheDir(): string {
  return (
    process.env.KUBEMEND_BUNDLE_DIR ??
    join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'kubemend', 'bundles')
  );
}

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((name) => join(dir, name))
    .filter((file) => statSync(file).isFile())
    .sort();
}

/** A hash of every input file's path and content. */
export function bundleInputHash(root = ROOT): string {
  const hash = createHash('sha256');
  const files = [
    ...INPUT_DIRS.flatMap((d) => filesUnder(join(root, d))),
    ...INPUT_FILES.map((f) => join(root, f)).filter((f) => existsSync(f)),
  ];
  for (const file of files) {
    hash.update(relative(root, file)).update('\0').update(readFileSync(file)).update('\0');
  }
  return hash.digest('hex').slice(0, 24);
}

/**
 * The bundle for `workflowsPath`: read from the cache when its inputs are unchanged, otherwise
 * built and stored (atomically, so a concurrent worker never reads half a file). A cache that
 * cannot be written only costs the next start its bundling time.
 */
export async function workflowBundle(
  workflowsPath: string,
  cacheDir = bundleCacheDir(),
): Promise<{ code: string } | { codePath: string }> {
  const codePath = join(cacheDir, `workflows-${bundleInputHash()}.js`);
  if (existsSync(codePath)) return { codePath };
  const logger = Runtime.instance().logger;
  const { code } = await bundleWorkflowCode({ workflowsPath, logger });
  try {
    mkdirSync(dirname(codePath), { recursive: true });
    const tmp = `${codePath}.${process.pid}.tmp`;
    writeFileSync(tmp, code);
    renameSync(tmp, codePath);
    pruneOld(cacheDir, codePath);
  } catch (err) {
    logger.warn('Workflow bundle not cached; the next start bundles again', {
      path: codePath,
      error: String(err),
    });
  }
  return { code };
}

/** Removes bundles of other code versions written more than a week ago. */
function pruneOld(cacheDir: string, keep: string): void {
  for (const name of readdirSync(cacheDir)) {
    const file = join(cacheDir, name);
    if (file === keep || !/^workflows-\w+\.js$/.test(name)) continue;
    if (Date.now() - statSync(file).mtimeMs > PRUNE_AFTER_MS) rmSync(file, { force: true });
  }
}

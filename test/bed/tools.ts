/** Where the bed finds its binaries and its own sources. */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Root of the kubemend repository (two levels above this file). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Directory of the bed's sources (scenarios, kubelet simulator). */
export const BED_SRC = fileURLToPath(new URL('./', import.meta.url));

/** Binaries the control plane needs from the tools cache. */
export const CONTROL_PLANE_BINARIES = [
  'etcd',
  'kube-apiserver',
  'kube-controller-manager',
  'kube-scheduler',
];

/**
 * The tools bin dir: `$KUBEMEND_TOOLS_BIN`, else what `scripts/tools.sh --print-bin-dir` says.
 */
export function resolveBinDir(): string {
  const fromEnv = process.env.KUBEMEND_TOOLS_BIN;
  if (fromEnv) return fromEnv;
  return execFileSync('bash', [join(REPO_ROOT, 'scripts/tools.sh'), '--print-bin-dir'], {
    encoding: 'utf8',
  }).trim();
}

/**
 * Checks that every control-plane binary exists in `binDir`.
 * @throws Error listing the missing binaries and how to get them.
 */
export function requireBinaries(binDir: string): void {
  const missing = CONTROL_PLANE_BINARIES.filter((b) => !existsSync(join(binDir, b)));
  if (missing.length > 0) {
    throw new Error(
      `missing ${missing.join(', ')} in ${binDir}: run 'npm run tools' (or set KUBEMEND_TOOLS_BIN)`,
    );
  }
  for (const tool of ['/usr/sbin/sshd', '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1']) {
    if (!existsSync(tool))
      throw new Error(`missing ${tool}: apt-get install -y openssh-server faketime`);
  }
}

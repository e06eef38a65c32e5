/**
 * Worker configuration: which clusters this worker serves and where their credentials live.
 * Read and validated once at start-up; secrets stay here and never enter workflow input.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../common/errors.js';
import { InventorySchema } from '../common/inventory.js';
import type { Inventory } from '../common/inventory.js';

export interface ClusterConfig {
  name: string;
  kubeconfigPath: string;
  inventory: Inventory;
}

/** Reads and validates an inventory file; relative key paths resolve against the file. */
export function loadInventory(path: string): Inventory {
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ConfigError(`${path}: cannot read inventory: ${(err as Error).message}`);
  }
  const parsed = InventorySchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (i) => `field ${i.path.join('.') || '(root)'}: ${i.message}`,
    );
    throw new ConfigError(`${path}: invalid inventory\n  - ${problems.join('\n  - ')}`);
  }
  const base = dirname(resolve(path));
  const inv = parsed.data;
  inv.ssh.identityFile = resolve(base, inv.ssh.identityFile);
  inv.ssh.knownHostsFile = resolve(base, inv.ssh.knownHostsFile);
  const names = new Set<string>();
  for (const n of inv.nodes) {
    if (names.has(n.name)) throw new ConfigError(`${path}: field nodes: duplicate node ${n.name}`);
    names.add(n.name);
  }
  return inv;
}

/** A cluster from a kubeconfig path and an inventory path; the inventory names the cluster. */
export function loadCluster(kubeconfigPath: string, inventoryPath: string): ClusterConfig {
  const inventory = loadInventory(inventoryPath);
  try {
    readFileSync(kubeconfigPath);
  } catch (err) {
    throw new ConfigError(`cannot read kubeconfig ${kubeconfigPath}: ${(err as Error).message}`);
  }
  return { name: inventory.cluster, kubeconfigPath: resolve(kubeconfigPath), inventory };
}

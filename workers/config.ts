/**
 * Worker configuration: which clusters this worker serves and where their credentials live.
 * Read and validated once at start-up; secrets stay here and never enter workflow input.
 */
import { accessSync, constants, readFileSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';
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
  for (const [field, file] of [
    ['ssh.identityFile', inv.ssh.identityFile],
    ['ssh.knownHostsFile', inv.ssh.knownHostsFile],
  ] as const) {
    if (!readable(file)) throw new ConfigError(`${path}: field ${field}: cannot read ${file}`);
  }
  const names = new Set<string>();
  for (const n of inv.nodes) {
    if (names.has(n.name)) throw new ConfigError(`${path}: field nodes: duplicate node ${n.name}`);
    names.add(n.name);
  }
  return inv;
}

function readable(file: string): boolean {
  try {
    accessSync(file, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

/** Checks a kubeconfig the way the Kubernetes client will read it: a context with a server. */
function checkKubeconfig(path: string): void {
  const kc = new KubeConfig();
  try {
    kc.loadFromFile(path);
  } catch (err) {
    throw new ConfigError(`kubeconfig ${path}: ${(err as Error).message.split('\n')[0]}`);
  }
  const context = kc.getCurrentContext();
  if (!context) throw new ConfigError(`kubeconfig ${path}: no current-context`);
  const server = kc.getCurrentCluster()?.server;
  if (!server)
    throw new ConfigError(`kubeconfig ${path}: context ${context} has no cluster with a server`);
}

/** A cluster from a kubeconfig path and an inventory path; the inventory names the cluster. */
export function loadCluster(kubeconfigPath: string, inventoryPath: string): ClusterConfig {
  const inventory = loadInventory(inventoryPath);
  checkKubeconfig(kubeconfigPath);
  return { name: inventory.cluster, kubeconfigPath: resolve(kubeconfigPath), inventory };
}

/**
 * The SSH inventory of a cluster: which nodes exist and how to reach them. The file names the
 * private key and known_hosts by path; only the worker opens them, and only the node names ever
 * reach a workflow.
 */
import { z } from 'zod';

export const InventorySchema = z.strictObject({
  apiVersion: z.literal('kubemend.io/v1alpha1'),
  kind: z.literal('Inventory'),
  cluster: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'a cluster name (lowercase, digits, -)'),
  ssh: z.strictObject({
    user: z.string().min(1).default('root'),
    port: z.number().int().min(1).max(65535).default(22),
    identityFile: z.string().min(1),
    /** OpenSSH known_hosts file; a node whose host key is not in it is refused. */
    knownHostsFile: z.string().min(1),
    connectTimeout: z.number().int().min(1).default(10),
    commandTimeout: z.number().int().min(1).default(60),
    /**
     * Folder on each node where a state-changing command notes its PID before it starts, so a
     * retry after a worker crash can wait for it instead of running it a second time.
     */
    stateDir: z
      .string()
      .regex(/^\/[-\w./]*$/, 'an absolute path (letters, digits, - _ . /)')
      .default('/run/kubemend'),
  }),
  nodes: z
    .array(
      z.strictObject({
        name: z.string().min(1),
        address: z.string().min(1),
        port: z.number().int().min(1).max(65535).optional(),
        user: z.string().min(1).optional(),
      }),
    )
    .min(1),
});
export type Inventory = z.infer<typeof InventorySchema>;
export type InventoryNode = Inventory['nodes'][number];

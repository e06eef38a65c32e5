/**
 * The SSH layer against real sshd nodes of the test bed: host-key pinning, the remote timeout,
 * and killing a remote command when its activity is cancelled.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Bed } from '../bed/index.js';
import { startBed } from '../bed/index.js';
import { NodeShell } from '../../activities/ssh.js';
import { HostKeyMismatchError, RemoteCommandError } from '../../common/errors.js';
import type { Inventory } from '../../common/inventory.js';
import { loadInventory } from '../../workers/config.js';

describe('NodeShell on real sshd', () => {
  let bed: Bed;
  let inventory: Inventory;
  const shell = (inv: Inventory = inventory): NodeShell =>
    new NodeShell(inv, inv.nodes[0] as Inventory['nodes'][number]);

  beforeAll(async () => {
    bed = await startBed({ scenario: 'seed' });
    inventory = loadInventory(bed.inventoryPath);
  });

  afterAll(async () => {
    await bed?.stop();
  });

  it('runs a command and returns its output and exit code', async () => {
    const result = await shell().run('echo hello; echo oops >&2; exit 3', { allowFailure: true });

    expect(result).toEqual({ code: 3, stdout: 'hello\n', stderr: 'oops\n' });
  });

  it('refuses a node whose host key is not the pinned one', async () => {
    const other = bed.state.nodes[1]?.dir ?? '';
    const [type, key] = readFileSync(join(other, 'ssh_host_ed25519_key.pub'), 'utf8').split(/\s+/);
    const node = inventory.nodes[0] as Inventory['nodes'][number];
    const knownHosts = join(bed.dir, 'wrong_known_hosts');
    writeFileSync(knownHosts, `[${node.address}]:${node.port} ${type} ${key}\n`);

    const attempt = shell({
      ...inventory,
      ssh: { ...inventory.ssh, knownHostsFile: knownHosts },
    }).run('true');

    await expect(attempt).rejects.toThrow(HostKeyMismatchError);
    await expect(attempt).rejects.toThrow(/is not the pinned one/);
  });

  it('ends a command that outlives its timeout on the node', async () => {
    const started = Date.now();

    const attempt = shell().run('sleep 30', { timeoutSec: 1 });

    await expect(attempt).rejects.toThrow(RemoteCommandError);
    await expect(attempt).rejects.toThrow(/timed out after 1s/);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('kills the remote command when the activity is cancelled', async () => {
    const marker = `kubemend-cancel-${Date.now()}`;
    const abort = new AbortController();

    const attempt = shell().run(`sleep 60; echo ${marker}`, { signal: abort.signal });
    await new Promise((r) => setTimeout(r, 1500));
    abort.abort();
    await expect(attempt).rejects.toThrow(/cancelled/);
    await new Promise((r) => setTimeout(r, 500));
    const left = await shell().run('ps -eo args | grep "[s]leep 60" | wc -l');

    expect(left.stdout.trim()).toBe('0');
  });
});

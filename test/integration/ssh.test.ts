/**
 * The SSH layer against real sshd nodes of the test bed: host-key pinning, the remote timeout,
 * killing a remote command when its activity is cancelled, and waiting out a command that an
 * earlier attempt left running.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
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

  it('waits for a noted command still running on the node, then returns its note', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'kubemend-state-'));
    const inv = { ...inventory, ssh: { ...inventory.ssh, stateDir } };
    const earlier = shell(inv).run('sleep 3', { record: { key: 'k1', note: 'step-started 42' } });
    await new Promise((r) => setTimeout(r, 1000));
    let earlierDone = false;
    void earlier.then(() => (earlierDone = true));

    const note = await shell(inv).awaitEarlier('k1', 20);

    expect(note).toBe('step-started 42');
    expect(earlierDone).toBe(true);
    expect(await shell(inv).awaitEarlier('never-noted', 20)).toBeUndefined();
  });

  it('runs nothing when it cannot note the command', async () => {
    const inv = { ...inventory, ssh: { ...inventory.ssh, stateDir: '/proc/kubemend' } };

    const attempt = shell(inv).run('echo ran > /dev/null', { record: { key: 'k', note: 'n' } });

    await expect(attempt).rejects.toThrow(
      /cannot note the command in \/proc\/kubemend.*nothing was run/,
    );
  });
});

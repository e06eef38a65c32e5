/**
 * Dead man's switch of a bed started without `keepAlive`: started first, it polls the owner
 * process and, once the owner is gone without having stopped the bed (a test runner that
 * SIGKILLs its workers skips 'exit' hooks), stops every process recorded in bed.json.
 *
 * `node --import tsx test/bed/watchdog.ts --dir <bed> --owner <pid>`
 */
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { isAlive, killDaemon, sleep } from './procs.js';
import { loadState, saveState } from './state.js';

function arg(name: string): string {
  const i = process.argv.indexOf(name);
  const v = i > 0 ? process.argv[i + 1] : undefined;
  if (!v) throw new Error('usage: watchdog.ts --dir <bed> --owner <pid>');
  return v;
}

/** Watches `owner`; tears the bed in `dir` down when the owner dies first. */
export async function watch(dir: string, owner: number): Promise<void> {
  for (;;) {
    await sleep(500);
    const state = loadState(dir);
    if (state.phase === 'stopped' || state.phase === 'failed') return;
    if (isAlive(owner)) continue;
    const line = {
      ts: new Date().toISOString(),
      level: 'warn',
      component: 'watchdog',
      msg: 'Owner died; stopping bed',
      owner,
    };
    appendFileSync(join(dir, 'bed.log'), JSON.stringify(line) + '\n');
    const others = Object.values(state.processes).filter((p) => p.name !== 'watchdog');
    await Promise.all(others.map((p) => killDaemon(p, 2000)));
    state.phase = 'stopped';
    saveState(state);
    return;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  watch(arg('--dir'), Number(arg('--owner'))).then(
    () => process.exit(0),
    () => process.exit(1),
  );
}

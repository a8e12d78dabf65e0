/**
 * The last resort of `floe serve` (src/cli/process-guard.ts): an exception thrown where nothing can
 * catch it, or a rejection nobody awaits, is logged and the process keeps running. Checked in a
 * real Node process (the compiled guard), because vitest traps such errors itself.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/server.js';

const dist = (file: string) => pathToFileURL(path.join(REPO_ROOT, 'dist/src', file)).href;

function run(guarded: boolean) {
  const script = `
    import { installProcessGuard } from ${JSON.stringify(dist('cli/process-guard.js'))};
    import { createLogger } from ${JSON.stringify(dist('log.js'))};
    if (${guarded}) installProcessGuard(createLogger('info'));
    setTimeout(() => { throw new Error('thrown in a timer'); }, 5);
    setTimeout(() => void Promise.reject(new Error('nobody awaits this')), 10);
    setTimeout(() => { process.stdout.write('still alive\\n'); }, 100);
  `;
  return spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 10_000 });
}

describe('process guard', () => {
  it('logs uncaught exceptions and unhandled rejections and keeps the process running', () => {
    const r = run(true);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/still alive/);
    const lines = r.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg: string; err?: { message: string } });
    expect(lines.find((l) => l.msg.startsWith('uncaught exception'))?.err?.message).toBe('thrown in a timer');
    expect(lines.find((l) => l.msg.startsWith('unhandled promise rejection'))?.err?.message).toBe('nobody awaits this');
  });

  it('without it, the same script dies (so the test above proves the guard)', () => {
    const r = run(false);
    expect(r.status).not.toBe(0);
    expect(r.stdout).not.toMatch(/still alive/);
  });
});

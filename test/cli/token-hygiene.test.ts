/**
 * The README's login examples, run as written (through npx, with their own npm cache and HOME):
 * the token never shows in any process's arguments while they run, nor in npm's debug logs.
 */
import { spawn, execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';

const exec = promisify(execFile);
let server: TestServer;

async function readmeLoginExamples(): Promise<string[]> {
  const readme = await readFile(path.join(REPO_ROOT, 'README.md'), 'utf8');
  const block = /<!-- login-examples[^>]*-->\n```sh\n([\s\S]*?)```/.exec(readme);
  if (!block) throw new Error('README.md has no login-examples block');
  return block[1]!.split('\n').filter((l) => l.trim());
}

beforeAll(async () => {
  server = await startFloe();
  await createOrg(server, 'acme');
});
afterAll(async () => {
  await server?.cleanup();
});

describe('README login examples', () => {
  it('leave the token in no process arguments and no npm log', async () => {
    const examples = await readmeLoginExamples();
    expect(examples.length).toBeGreaterThan(0);
    for (const example of examples) {
      expect(example).toMatch(/^npx floe login /);
      const home = await mkdtemp(path.join(os.tmpdir(), 'floe-hygiene-'));
      const { token } = await createToken(server, 'acme', ['read']);
      await writeFile(path.join(home, 'floe-token'), `${token}\n`, { mode: 0o600 });
      const command = example.replace('https://floe.example.com', server.url);
      expect(command).not.toContain(token); // nothing for shell history to keep
      const env = {
        ...process.env,
        HOME: home,
        XDG_CONFIG_HOME: path.join(home, '.config'),
        npm_config_cache: path.join(home, '.npm'),
        // With a fresh cache npx installs this checkout and runs its `prepare` (npm run build): that
        // rewrote dist/ under the tests running beside this one (a floe serve started meanwhile
        // loaded half-written modules). `npm test` has built dist/ already.
        npm_config_ignore_scripts: 'true',
        FLOE_TOKEN: '',
        FLOE_SERVER: '',
      };
      const child = spawn('sh', ['-c', command], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const done = new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? 1)));
      let running = true;
      void done.then(() => (running = false));
      const seen: string[] = [];
      while (running) {
        seen.push((await exec('ps', ['-eo', 'args'])).stdout);
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(await done, stderr).toBe(0);
      expect(seen.some((s) => s.includes('floe login'))).toBe(true); // ps did see the command run
      expect(seen.join('\n')).not.toContain(token);
      const logs = path.join(home, '.npm', '_logs');
      const files = await readdir(logs);
      expect(files.length).toBeGreaterThan(0);
      for (const f of files) expect(await readFile(path.join(logs, f), 'utf8')).not.toContain(token);
      expect(await readFile(path.join(home, '.config', 'nix', 'netrc'), 'utf8')).toContain(token);
    }
  }, 900_000);
});

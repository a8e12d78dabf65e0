import { describe, expect, it } from 'vitest';
import type { CliIo } from './commands/context.js';
import { main } from './main.js';

function captured(input = ''): CliIo & { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    stdin: (async function* () {
      yield input;
    })(),
    out: () => out,
    err: () => err,
  };
}

describe('main(argv, io) in-process', () => {
  it('runs a command and returns its status without exiting the process', async () => {
    const io = captured();
    expect(await main(['__complete', 'sl'], io)).toBe(0);
    expect(io.out()).toBe('slice\n');
  });
  it('turns usage errors, --help and command errors into statuses and messages on io', async () => {
    const help = captured();
    expect(await main(['--help'], help)).toBe(0);
    expect(help.out()).toMatch(/Usage: floe/);
    // `floe login` with nothing to go on lists the ways to log in and fails.
    const bare = captured();
    const savedToken = process.env.FLOE_TOKEN;
    delete process.env.FLOE_TOKEN;
    try {
      expect(await main(['login', '--server', 'http://127.0.0.1:9'], bare)).toBe(1);
    } finally {
      if (savedToken !== undefined) process.env.FLOE_TOKEN = savedToken;
    }
    expect(bare.err()).toMatch(/say how to log in:\n {2}floe login github-action .*\n {2}floe login gitlab-pipeline/);
    expect(bare.err()).toMatch(/no login method given/);
    // Where a login cannot renew itself, its help says why and what to do instead.
    const gitlab = captured();
    expect(await main(['login', 'gitlab-pipeline', '--help'], gitlab)).toBe(0);
    expect(gitlab.out()).toMatch(/id_tokens once[\s\S]*floe trust add \.\.\. --ttl 3h/);
    const oidc = captured();
    expect(await main(['login', 'oidc', '--help'], oidc)).toBe(0);
    expect(oidc.out()).toMatch(/no refresh token[\s\S]*Log in again when it expires[\s\S]*floe token create --ttl/);
    const unknown = captured();
    expect(await main(['no-such-command'], unknown)).not.toBe(0);
    expect(unknown.err()).toMatch(/unknown command/);
    const saved = process.env.FLOE_SERVER;
    delete process.env.FLOE_SERVER;
    try {
      const noServer = captured();
      expect(await main(['org', 'create', 'x', '--server', 'ftp://nope'], noServer)).toBe(1);
      expect(noServer.err()).toMatch(/--server must be an http\(s\) URL/);
    } finally {
      if (saved !== undefined) process.env.FLOE_SERVER = saved;
    }
  });
});

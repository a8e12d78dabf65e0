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

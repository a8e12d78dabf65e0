/**
 * Hostile flake tarballs, published through the flakehub-push protocol to a real server: found in
 * a security review. A 205-byte tarball (a symlink, then a file below it) threw inside a stream
 * callback and ended the process; symlink chains (`d/up -> ..`, `l -> d/up/../..`) passed the
 * lexical check and pointed outside the unpacked tree. Each is now a 400 naming the entry, and the
 * server keeps answering.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { craftedTarball, flakehubPush, type TarEntry } from '../helpers/flakes.js';

let server: TestServer;
let publisher: string;
const flake = { name: 'source/flake.nix', content: '{ outputs = _: { }; }\n' };

beforeAll(async () => {
  server = await startFloe();
  await createOrg(server, 'acme');
  publisher = (await createToken(server, 'acme', ['publish'])).token;
});
afterAll(async () => {
  await server?.cleanup();
});

async function stillServing(): Promise<void> {
  expect(server.process.exitCode).toBeNull();
  expect(server.process.signalCode).toBeNull();
  const res = await fetch(`${server.url}/healthz`, { signal: AbortSignal.timeout(2000) });
  expect(res.status).toBe(200);
}

const hostile: Array<[string, TarEntry[], RegExp]> = [
  [
    'a file below a symlink',
    [flake, { name: 'source/l', type: 'symlink', linkname: 'x' }, { name: 'source/l/f', content: '1' }],
    /source\/l is both a symlink and a directory/,
  ],
  [
    'a directory below a symlink',
    [
      flake,
      { name: 'source/l', type: 'symlink', linkname: '.' },
      { name: 'source/l/d/' },
      { name: 'source/l/d/f', content: '1' },
    ],
    /both a symlink and a directory/,
  ],
  ['a file below a file', [flake, { name: 'source/flake.nix/f', content: '1' }], /both a file and a directory/],
  [
    'a symlink over a directory',
    [flake, { name: 'source/d/f', content: '1' }, { name: 'source/d', type: 'symlink', linkname: '..' }],
    /duplicate entry "source\/d"/,
  ],
  [
    'a symlink chain climbing out',
    [
      flake,
      { name: 'source/d/up', type: 'symlink', linkname: '..' },
      { name: 'source/l', type: 'symlink', linkname: 'd/up/../..' },
    ],
    /symlink "source\/l" points outside the tree/,
  ],
  [
    'a chain through a link declared later',
    [
      flake,
      { name: 'source/l', type: 'symlink', linkname: 'm/../..' },
      { name: 'source/m', type: 'symlink', linkname: '.' },
    ],
    /symlink "source\/l" points outside the tree/,
  ],
  [
    'a link climbing above the top',
    [flake, { name: 'source/a/l', type: 'symlink', linkname: '../../etc' }],
    /points outside the tree/,
  ],
];

describe('hostile tarballs', () => {
  it('the 205-byte tarball that ended the process is a 400, and the server keeps serving', async () => {
    const bytes = await craftedTarball([
      { name: 'source/l', type: 'symlink', linkname: 'x' },
      { name: 'source/l/f', content: 'x' },
    ]);
    expect(bytes.length).toBeLessThan(300);
    const r = await flakehubPush(server, publisher, 'acme', 'bomb', '1.0.0', bytes);
    expect(r).toMatchObject({ stage: 200, put: 400 });
    expect(r.message).toMatch(/tarball: source\/l is both a symlink and a directory/);
    await stillServing();
  });

  for (const [name, entries, message] of hostile) {
    it(`refuses ${name} with a 400 naming the entry`, async () => {
      const r = await flakehubPush(server, publisher, 'acme', 'hostile', '1.0.0', await craftedTarball(entries));
      expect(r.put).toBe(400);
      expect(r.message).toMatch(message);
      await stillServing();
    });
  }

  it('many hostile uploads at once leave the server up, publishing nothing, and a good tarball still publishes', async () => {
    const results = await Promise.all(
      hostile.flatMap(([, entries]) =>
        [1, 2, 3].map(async () =>
          flakehubPush(server, publisher, 'acme', 'hostile', '1.0.1', await craftedTarball(entries)),
        ),
      ),
    );
    expect(results.every((r) => r.put === 400)).toBe(true);
    await stillServing();
    expect((await api(server, undefined, 'GET', '/api/v1/flakes/acme/hostile/releases')).status).toBe(404);
    const good = await craftedTarball([
      flake,
      { name: 'source/d/' },
      { name: 'source/d/up', type: 'symlink', linkname: '../flake.nix' },
      { name: 'source/link', type: 'symlink', linkname: 'd/../flake.nix' },
    ]);
    expect(await flakehubPush(server, publisher, 'acme', 'good', '1.0.0', good)).toMatchObject({ publish: 200 });
    expect(server.logs()).not.toMatch(/uncaught exception|unhandled promise rejection/);
  });
});

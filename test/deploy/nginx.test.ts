/**
 * deploy/nginx/floe.conf as shipped (only names, ports and the certificate swapped in), real
 * nginx with TLS from a CA made here, in front of a real `floe serve`: Nix 2.8 and the current
 * Nix upload with `nix copy --to https://…/cache` (a NAR well above nginx's 1 MB default body
 * limit) and substitute with signatures required, trusting the test CA (`ssl-cert-file`, NIX_SSL_CERT_FILE);
 * `floe login` and `floe push` work through the proxy too (NODE_EXTRA_CA_CERTS).
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLOE_BIN, REPO_ROOT, createOrg, createToken, freePort, startFloe } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';
import { BASE_NIX_CONFIG, fixtureDir, hostNix, modernNix, requireNix, writeNetrc } from '../helpers/nix.js';
import type { NixRunner } from '../helpers/nix.js';

const exec = promisify(execFile);
const hasNginx = spawnSync('sh', ['-c', 'command -v nginx || test -x /usr/sbin/nginx']).status === 0;
if (!hasNginx && process.env.CI) {
  throw new Error('nginx is missing and CI=true forbids skipping (.ci/run installs nginx-light)');
}
const versions = { [hostNix.name]: await requireNix(hostNix), [modernNix.name]: await requireNix(modernNix) };

let dir: string;
let server: TestServer;
let nginx: ChildProcess | undefined;
let proxyUrl: string;
let rw: string;
let key: string;

async function openssl(...args: string[]): Promise<void> {
  await exec('openssl', args, { cwd: dir });
}

/** A CA, and a certificate it signs for 127.0.0.1 and localhost. */
async function makeCertificates(): Promise<void> {
  await openssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-days',
    '2',
    '-subj',
    '/CN=Floe test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  );
  await openssl(
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    'server.key',
    '-out',
    'server.csr',
    '-subj',
    '/CN=127.0.0.1',
  );
  await writeFile(
    path.join(dir, 'server.ext'),
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n',
  );
  await openssl(
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'server.crt',
    '-days',
    '2',
    '-extfile',
    'server.ext',
  );
}

/** The repository's server blocks, pointed at this test's ports and files; everything else as shipped. */
async function nginxConfig(tlsPort: number, plainPort: number): Promise<string> {
  const shipped = await readFile(path.join(REPO_ROOT, 'deploy/nginx/floe.conf'), 'utf8');
  const site = shipped
    .replace('server 127.0.0.1:8080;', `server 127.0.0.1:${server.port};`)
    .replace('listen 443 ssl;', `listen 127.0.0.1:${tlsPort} ssl;`)
    .replace('listen 80;', `listen 127.0.0.1:${plainPort};`)
    .replace('/etc/ssl/floe/fullchain.pem', path.join(dir, 'server.crt'))
    .replace('/etc/ssl/floe/privkey.pem', path.join(dir, 'server.key'));
  expect(site).toContain(`127.0.0.1:${server.port}`);
  expect(site).toContain(path.join(dir, 'server.key'));
  const temp = (name: string) => `${name}_temp_path ${path.join(dir, `nginx-${name}`)};`;
  return `daemon off;\nuser root;\nworker_processes 1;\npid ${dir}/nginx.pid;\nerror_log ${dir}/nginx-error.log warn;
events { worker_connections 256; }
http {
  access_log ${dir}/nginx-access.log;
  ${temp('client_body')} ${temp('proxy')} ${temp('fastcgi')} ${temp('uwsgi')} ${temp('scgi')}
${site}
}\n`;
}

async function waitForProxy(url: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const r = spawnSync('curl', ['-sf', '--cacert', path.join(dir, 'ca.crt'), `${url}/healthz`]);
    if (r.status === 0) return;
    if (nginx?.exitCode !== null) {
      throw new Error(`nginx exited: ${await readFile(path.join(dir, 'nginx-error.log'), 'utf8')}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('nginx did not come up');
}

/**
 * A Nix command through the proxy, trusting the test CA and using this token's netrc. Nix 2.8 has no
 * `ssl-cert-file` setting (it came in 2.9): it reads NIX_SSL_CERT_FILE from the environment.
 */
function viaProxy(nix: NixRunner, netrc: string, cmd: string[]): string[] {
  const ca = path.join(dir, 'ca.crt');
  if (nix === hostNix) return ['env', `NIX_SSL_CERT_FILE=${ca}`, ...cmd, '--option', 'netrc-file', netrc];
  return [...cmd, '--option', 'ssl-cert-file', ca, '--option', 'netrc-file', netrc];
}

beforeAll(async () => {
  if (!hasNginx) return;
  dir = await fixtureDir('nginx');
  await makeCertificates();
  const tlsPort = await freePort();
  proxyUrl = `https://127.0.0.1:${tlsPort}`;
  server = await startFloe({ env: { FLOE_PUBLIC_URL: proxyUrl, FLOE_TRUSTED_PROXIES: 'loopback' } });
  await createOrg(server, 'acme');
  rw = (await createToken(server, 'acme', ['read', 'write'])).token;
  key = (await (await fetch(`${server.url}/.well-known/nix-cache-key?org=acme`)).text()).trim();
  await writeFile(path.join(dir, 'nginx.conf'), await nginxConfig(tlsPort, await freePort()));
  const nginxBin = existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : 'nginx';
  const args = ['-c', path.join(dir, 'nginx.conf'), '-e', path.join(dir, 'nginx-error.log')];
  nginx = spawn(nginxBin, args, { stdio: 'ignore' });
  await waitForProxy(proxyUrl);
}, 120_000);

afterAll(async () => {
  if (nginx && nginx.exitCode === null) {
    const exited = new Promise((r) => nginx!.once('exit', r));
    nginx.kill('SIGTERM');
    await exited;
  }
  await server?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A path with a 3 MiB random file (three times nginx's default body limit) and a small one referring to it. */
async function buildBigClosure(nix: NixRunner, seed: string): Promise<string> {
  const file = path.join(dir, `big-${seed}.nix`);
  await writeFile(
    file,
    `let big = derivation { name = "big-${seed}"; builder = "/bin/sh"; PATH = "/usr/bin:/bin";
      system = builtins.currentSystem;
      args = [ "-c" "mkdir $out; echo ${seed} > $out/seed; head -c 3145728 /dev/urandom > $out/blob" ]; };
  in derivation { name = "top-${seed}"; builder = "/bin/sh"; PATH = "/usr/bin:/bin"; system = builtins.currentSystem;
      args = [ "-c" "echo \${big} > $out" ]; }\n`,
  );
  const r = await nix.run(['nix-build', file, '--no-out-link'], { cacheHome: path.join(dir, `build-${seed}`) });
  if (r.code !== 0) throw new Error(`nix-build (${nix.name}): ${r.stderr}`);
  return r.stdout.trim().split('\n').at(-1)!;
}

describe.skipIf(!hasNginx)('Floe behind nginx with TLS', () => {
  for (const nix of [hostNix, modernNix]) {
    it.skipIf(!versions[nix.name])(
      `${nix.name}: nix copy --to https and substitution through the proxy`,
      async () => {
        const top = await buildBigClosure(nix, nix.name);
        const netrc = await writeNetrc(dir, `netrc-${nix.name}`, rw);
        const up = await nix.run(
          viaProxy(nix, netrc, ['nix', 'copy', '--to', `${proxyUrl}/cache?compression=none`, top]),
          { cacheHome: path.join(dir, `up-${nix.name}`) },
        );
        expect(up.code, up.stderr).toBe(0);
        // Both paths arrived through nginx; the big NAR was not cut at nginx's default 1 MB.
        const log = await readFile(path.join(dir, 'nginx-access.log'), 'utf8');
        expect(log).toMatch(/"PUT \/cache\/nar\/[^"]+" 2\d\d/);
        expect(log).not.toMatch(/" 413 /);

        const store = path.join(dir, `store-${nix.name}`);
        const down = await nix.run(
          viaProxy(nix, netrc, [
            'nix',
            'copy',
            '--option',
            'require-sigs',
            'true',
            '--option',
            'trusted-public-keys',
            key,
            '--from',
            `${proxyUrl}/cache`,
            '--to',
            store,
            top,
          ]),
          { cacheHome: path.join(dir, `down-${nix.name}`) },
        );
        expect(down.code, down.stderr).toBe(0);
        const closure = await nix.run(['nix-store', '--store', store, '-qR', top], {
          cacheHome: path.join(dir, `q-${nix.name}`),
        });
        expect(closure.stdout.trim().split('\n')).toHaveLength(2);
      },
      600_000,
    );
  }

  it.skipIf(!versions[hostNix.name])(
    'floe login and floe push work through the proxy',
    async () => {
      const env = {
        ...process.env,
        NODE_EXTRA_CA_CERTS: path.join(dir, 'ca.crt'),
        NIX_CONFIG: BASE_NIX_CONFIG,
        NIX_SSL_CERT_FILE: path.join(dir, 'ca.crt'),
        XDG_CACHE_HOME: path.join(dir, 'cli-cache'),
      };
      const netrc = path.join(dir, 'login-netrc');
      const nixConf = path.join(dir, 'login-nix.conf');
      const login = await exec(
        process.execPath,
        [FLOE_BIN, 'login', '--server', proxyUrl, '--token', rw, '--netrc', netrc, '--nix-conf', nixConf, '--json'],
        { env },
      );
      // The substituter Floe hands out is the public https URL, not its own listen address.
      expect(JSON.parse(login.stdout)).toMatchObject({ org: 'acme', substituter: `${proxyUrl}/cache` });
      expect(await readFile(netrc, 'utf8')).toContain(`machine 127.0.0.1`);
      expect(await readFile(nixConf, 'utf8')).toContain(key);

      const top = await buildBigClosure(hostNix, 'cli');
      const pushEnv = { ...env, FLOE_SERVER: proxyUrl, FLOE_TOKEN: rw };
      const pushed = await exec(process.execPath, [FLOE_BIN, 'push', top, '--json'], { env: pushEnv });
      expect(JSON.parse(pushed.stdout)).toMatchObject({ total: 2, uploaded: 2, failed: [] });
      // Substitute with exactly what `floe login` wrote.
      const store = path.join(dir, 'store-cli');
      const conf = (await readFile(nixConf, 'utf8')).replace(/^substituters\s*=.*$/m, '');
      const got = await hostNix.run(
        [
          'env',
          `NIX_CONFIG=${BASE_NIX_CONFIG}\n${conf}\nrequire-sigs = true`,
          `NIX_SSL_CERT_FILE=${path.join(dir, 'ca.crt')}`,
          'nix',
          'copy',
          '--from',
          `${proxyUrl}/cache`,
          '--to',
          store,
          top,
        ],
        { cacheHome: path.join(dir, 'cli-sub') },
      );
      expect(got.code, got.stderr).toBe(0);
    },
    300_000,
  );
});

/** Publishing flakes for the web tests (the flakehub-push protocol, as CI would). */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { TestServer } from '../helpers/server.js';

export function flakeTarball(name: string, data: string): Buffer {
  const root = mkdtempSync('/tmp/floe-web-flake-');
  const dir = path.join(root, `${name}-source`);
  mkdirSync(dir);
  writeFileSync(
    path.join(dir, 'flake.nix'),
    `{ description = "${name}"; outputs = { self }: { greeting = "${data}"; }; }\n`,
  );
  execFileSync('tar', ['-czf', path.join(root, 'src.tar.gz'), '-C', root, `${name}-source`]);
  return readFileSync(path.join(root, 'src.tar.gz'));
}

export async function publish(
  server: TestServer,
  token: string,
  org: string,
  flake: string,
  version: string,
  meta: Record<string, unknown>,
): Promise<void> {
  const tarball = flakeTarball(flake, `${flake} ${version}`);
  const sha = createHash('sha256').update(tarball).digest('base64');
  const auth = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' };
  const stage = await fetch(`${server.url}/upload/${org}/${flake}/${version}/${tarball.length}/${sha}`, {
    method: 'POST',
    headers: auth,
    body: JSON.stringify(meta),
  });
  if (stage.status !== 200) throw new Error(`stage ${stage.status}: ${await stage.text()}`);
  const { s3_upload_url, uuid } = (await stage.json()) as { s3_upload_url: string; uuid: string };
  const put = await fetch(s3_upload_url, { method: 'PUT', body: new Uint8Array(tarball) });
  if (put.status !== 200) throw new Error(`put ${put.status}: ${await put.text()}`);
  const done = await fetch(`${server.url}/publish/${uuid}`, { method: 'POST', headers: auth });
  if (done.status !== 200) throw new Error(`publish ${done.status}: ${await done.text()}`);
}

export const REV = (n: number) => n.toString(16).padStart(40, 'a');

export const XSS_README = `# Hello

A friendly greeting for your **Nix** builds.

<script>window.__pwned = 1</script>
<img src=x onerror="window.__pwned = 2">

[click me](javascript:window.__pwned=3)

\`\`\`nix
{ inputs.hello.url = "…"; }
\`\`\`

| Output | What |
| --- | --- |
| packages.default | the hello binary |
`;

export function helloMeta(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    commit_count: 3,
    description: 'Say hello from a pinned, cached flake',
    readme: XSS_README,
    repo: 'acme/hello',
    revision: REV(3),
    visibility: 'public',
    spdx_identifier: 'MIT',
    labels: ['demo', 'greeting'],
    outputs: {
      version: 1,
      docs: {},
      inventory: {
        packages: {
          children: {
            'x86_64-linux': { children: { default: { what: 'package', shortDescription: 'hello, world' } } },
          },
        },
        nixosModules: { children: { default: { what: 'NixOS module' } } },
      },
    },
    ...over,
  };
}

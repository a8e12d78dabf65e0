/** Synthetic store paths and NARs for HTTP-level tests (no Nix needed). */
import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { encodeNix32 } from '../../src/nix/nix32.js';
import { type NarTree, serializeNar } from '../../src/nix/nar.js';
import { formatNarInfo } from '../../src/nix/narinfo.js';
import type { StorePathBase } from '../../src/nix/store-path.js';
import { parseHash } from '../../src/nix/hash.js';

export interface FakePath {
  base: StorePathBase;
  hashPart: string;
  nar: Buffer;
  narHash: string;
  narSize: number;
  references: string[];
}

export function fakePath(name: string, tree?: NarTree, references: string[] = []): FakePath {
  const hashPart = encodeNix32(randomBytes(20));
  const nar = serializeNar(tree ?? { type: 'regular', contents: `${name} ${randomBytes(16).toString('hex')}\n` });
  return {
    base: `${hashPart}-${name}` as StorePathBase,
    hashPart,
    nar,
    narHash: `sha256:${encodeNix32(createHash('sha256').update(nar).digest())}`,
    narSize: nar.length,
    references,
  };
}

export function narInfoFor(p: FakePath, url: string, overrides: Partial<{ narHash: string; narSize: number; references: string[] }> = {}): string {
  return formatNarInfo({
    storePath: p.base,
    url,
    compression: 'none',
    narHash: parseHash(overrides.narHash ?? p.narHash),
    narSize: overrides.narSize ?? p.narSize,
    references: (overrides.references ?? p.references) as StorePathBase[],
    sigs: [],
  });
}

/** Uploads like `nix copy` does: PUT the NAR file, then the narinfo. Returns both statuses. */
export async function nixStyleUpload(cacheUrl: string, auth: string | undefined, p: FakePath, opts: { fileName?: string; body?: Buffer; narinfo?: string } = {}) {
  const fileName = opts.fileName ?? `${encodeNix32(createHash('sha256').update(p.nar).digest())}.nar`;
  const headers = auth ? { Authorization: auth } : undefined;
  const narRes = await fetch(`${cacheUrl}/nar/${fileName}`, { method: 'PUT', headers, body: new Uint8Array(opts.body ?? p.nar) });
  const narText = await narRes.text();
  const infoRes = await fetch(`${cacheUrl}/${p.hashPart}.narinfo`, { method: 'PUT', headers, body: opts.narinfo ?? narInfoFor(p, `nar/${fileName}`) });
  const infoText = await infoRes.text();
  return { nar: narRes.status, narText, narinfo: infoRes.status, narinfoText: infoText };
}

/** Starts a batch upload of `p`, sends half of its NAR, then SIGKILLs the server mid-request. */
export async function killMidUpload(server: { url: string; stop(signal?: NodeJS.Signals): Promise<void> }, token: string, p: FakePath): Promise<void> {
  const meta = JSON.stringify({ storePath: `/nix/store/${p.base}`, narHash: p.narHash, narSize: p.narSize, references: [] }) + '\n';
  await new Promise<void>((resolve) => {
    const req = request(`${server.url}/api/v1/cache/paths`, { method: 'PUT', headers: { Authorization: `Bearer ${token}` } });
    req.on('error', () => resolve());
    req.on('response', () => resolve());
    req.write(meta);
    req.write(p.nar.subarray(0, p.nar.length / 2), async () => {
      await new Promise((r) => setTimeout(r, 200));
      await server.stop('SIGKILL');
      req.destroy();
      resolve();
    });
  });
}

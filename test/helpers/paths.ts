/** Synthetic store paths and NARs for HTTP-level tests (no Nix needed). */
import { createHash, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
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

export function narInfoFor(
  p: FakePath,
  url: string,
  overrides: Partial<{ narHash: string; narSize: number; references: string[] }> = {},
): string {
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
export async function nixStyleUpload(
  cacheUrl: string,
  auth: string | undefined,
  p: FakePath,
  opts: { fileName?: string; body?: Buffer; narinfo?: string } = {},
) {
  const fileName = opts.fileName ?? `${encodeNix32(createHash('sha256').update(p.nar).digest())}.nar`;
  const headers = auth ? { Authorization: auth } : undefined;
  const narRes = await fetch(`${cacheUrl}/nar/${fileName}`, {
    method: 'PUT',
    headers,
    body: new Uint8Array(opts.body ?? p.nar),
  });
  const narText = await narRes.text();
  const infoRes = await fetch(`${cacheUrl}/${p.hashPart}.narinfo`, {
    method: 'PUT',
    headers,
    body: opts.narinfo ?? narInfoFor(p, `nar/${fileName}`),
  });
  const infoText = await infoRes.text();
  return { nar: narRes.status, narText, narinfo: infoRes.status, narinfoText: infoText };
}

/** Starts a batch upload of `p`, sends half of its NAR, then SIGKILLs the server mid-request. */
export async function killMidUpload(
  server: { url: string; stop(signal?: NodeJS.Signals): Promise<void> },
  token: string,
  p: FakePath,
): Promise<void> {
  const meta =
    JSON.stringify({ storePath: `/nix/store/${p.base}`, narHash: p.narHash, narSize: p.narSize, references: [] }) +
    '\n';
  await new Promise<void>((resolve) => {
    const req = request(`${server.url}/api/v1/cache/paths`, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${token}` },
    });
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

/** The command-line compressors tests use for hostile bodies: what any client could send. */
const COMPRESSORS = {
  bzip2: ['bzip2', '-9', '-c'],
  xz: ['xz', '-6', '-c', '-T1'],
  zstd: ['zstd', '-19', '-c', '-q'],
  gzip: ['gzip', '-9', '-c'],
  lz4: ['lz4', '-9', '-c', '-q'],
} as const;
export type BombCodec = keyof typeof COMPRESSORS;

/** Compresses the concatenation of `parts`, where a number is that many zero bytes (never held in memory at once). */
export async function compressParts(codec: BombCodec, parts: Array<Buffer | number>): Promise<Buffer> {
  const [cmd, ...args] = COMPRESSORS[codec];
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const out: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => out.push(d));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  const zeros = Buffer.alloc(1 << 20);
  for (const part of parts) {
    if (typeof part !== 'number') {
      if (!child.stdin.write(part)) await once(child.stdin, 'drain');
      continue;
    }
    for (let left = part; left > 0; left -= zeros.length) {
      if (!child.stdin.write(zeros.subarray(0, Math.min(left, zeros.length)))) await once(child.stdin, 'drain');
    }
  }
  child.stdin.end();
  if ((await exited) !== 0) throw new Error(`${cmd} failed`);
  return Buffer.concat(out);
}

/** A valid NAR of one regular file of `size` zero bytes, as parts for compressParts, with its hash. */
export function zeroNar(size: number): { parts: Array<Buffer | number>; narHash: string; narSize: number } {
  const str = (s: string) => {
    const b = Buffer.alloc(8 + Math.ceil(s.length / 8) * 8);
    b.writeBigUInt64LE(BigInt(s.length));
    b.write(s, 8, 'latin1');
    return b;
  };
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(size));
  const head = Buffer.concat([str('nix-archive-1'), str('('), str('type'), str('regular'), str('contents'), len]);
  const tail = Buffer.concat([Buffer.alloc((8 - (size % 8)) % 8), str(')')]);
  const sha = createHash('sha256').update(head);
  const zeros = Buffer.alloc(1 << 20);
  for (let left = size; left > 0; left -= zeros.length) sha.update(zeros.subarray(0, Math.min(left, zeros.length)));
  sha.update(tail);
  return {
    parts: [head, size, tail],
    narHash: `sha256:${encodeNix32(sha.digest())}`,
    narSize: head.length + size + tail.length,
  };
}

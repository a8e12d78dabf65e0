/**
 * NAR downloads streamed from S3 through Floe: one GetObject stream against ranged GETs in flight
 * (FLOE_S3_READ_DEPTH). An object store serves each connection at a bounded rate (S3: about
 * 90 MB/s per connection, which is why AWS advises parallel ranged GETs); s3rver on loopback has
 * no such bound, so it sits behind a proxy that holds every connection to BENCH_S3_CONN_MIBS
 * (default 64 MiB/s) from store to client. Everything (s3rver, the proxy, Floe, curl) runs in its
 * own process; this one only waits. `BENCH_ONLY=s3` runs only this part.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import { encodeNix32 } from '../src/nix/nix32.js';
import { serializeNar } from '../src/nix/nar.js';
import { parseNarInfo } from '../src/nix/narinfo.js';
import { freePort } from '../test/helpers/server.js';
import { startS3 } from '../test/helpers/s3.js';
import { benchOrgToken, serveForBench } from './serve.js';

const NAR_MIB = Number(process.env.BENCH_NAR_MIB ?? 64);
const CONN_MIBS = Number(process.env.BENCH_S3_CONN_MIBS ?? 64);
const ROUNDS = Number(process.env.BENCH_S3_ROUNDS ?? 3);
const DEPTHS = [1, 4];

/** A TCP proxy holding each connection's store-to-client direction to `bytesPerSec` (token bucket, 10 ms ticks). */
function throttleProgram(listen: number, target: number, bytesPerSec: number): string {
  return `
const net = require('node:net');
const rate = ${bytesPerSec}, tick = 10, perTick = rate * tick / 1000, burst = perTick * 5;
net.createServer((client) => {
  const upstream = net.connect(${target}, '127.0.0.1');
  client.pipe(upstream);
  let tokens = burst;
  const timer = setInterval(() => {
    tokens = Math.min(burst, tokens + perTick);
    if (tokens > 0 && upstream.isPaused()) upstream.resume();
  }, tick);
  upstream.on('data', (chunk) => {
    client.write(chunk);
    tokens -= chunk.length;
    if (tokens <= 0) upstream.pause();
  });
  upstream.on('end', () => client.end());
  const close = () => { clearInterval(timer); client.destroy(); upstream.destroy(); };
  upstream.on('error', close); client.on('error', close); upstream.on('close', close); client.on('close', close);
}).listen(${listen}, '127.0.0.1');`;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function s3ReadsBench(work: string): Promise<string[][]> {
  const s3 = await startS3('bench-reads');
  const proxyPort = await freePort();
  const proxy = spawn(
    process.execPath,
    ['-e', throttleProgram(proxyPort, Number(new URL(s3.endpoint).port), CONN_MIBS * 2 ** 20)],
    {
      stdio: 'ignore',
    },
  );
  try {
    const nar = serializeNar({ type: 'regular', contents: randomBytes(NAR_MIB << 20) });
    const meta = {
      storePath: `/nix/store/${encodeNix32(randomBytes(20))}-s3-read-bench`,
      narHash: `sha256:${encodeNix32(createHash('sha256').update(nar).digest())}`,
      narSize: nar.length,
      references: [],
    };
    const mibs = new Map<number, number>();
    for (const depth of DEPTHS) {
      const dataDir = path.join(work, `s3-reads-${depth}`);
      const env = {
        ...s3.env(`depth${depth}/`),
        FLOE_S3_ENDPOINT: `http://127.0.0.1:${proxyPort}`,
        FLOE_S3_READ_DEPTH: String(depth),
      };
      const server = await serveForBench(dataDir, env);
      try {
        const { auth } = await benchOrgToken(server.url, dataDir, 'reads');
        const put = await fetch(`${server.url}/api/v1/cache/paths`, {
          method: 'PUT',
          headers: { Authorization: auth },
          body: new Uint8Array(Buffer.concat([Buffer.from(JSON.stringify(meta) + '\n'), nar])),
        });
        if (put.status !== 201) throw new Error(`S3 read bench upload: ${put.status} ${await put.text()}`);
        const hash = meta.storePath.slice('/nix/store/'.length, '/nix/store/'.length + 32);
        const info = await (
          await fetch(`${server.url}/cache/${hash}.narinfo`, { headers: { Authorization: auth } })
        ).text();
        const narUrl = `${server.url}/cache/${parseNarInfo(info).url}`;
        const rates: number[] = [];
        for (let round = 0; round < ROUNDS; round++) {
          // curl in its own process: this one's event loop is not what is measured.
          const out = execFileSync(
            'curl',
            ['-sS', '-o', '/dev/null', '-w', '%{size_download} %{time_total}', '-H', `Authorization: ${auth}`, narUrl],
            { encoding: 'utf8' },
          );
          const [bytes, secs] = out.trim().split(' ').map(Number);
          rates.push(bytes! / 2 ** 20 / secs!);
        }
        mibs.set(depth, median(rates));
      } finally {
        server.stop();
      }
    }
    const one = mibs.get(1)!;
    const label = `NAR download ${NAR_MIB} MiB from S3 (store ${CONN_MIBS} MiB/s per connection)`;
    return DEPTHS.map((d) => [
      `${label}, ${d === 1 ? 'one GetObject stream' : `${d} ranged GETs in flight`}`,
      mibs.get(d)!.toFixed(0),
      d === 1 ? '' : `${(mibs.get(d)! / one).toFixed(2)}x`,
    ]);
  } finally {
    proxy.kill('SIGKILL');
    await s3.stop();
  }
}

export const S3_READS_COLUMNS = ['MiB/s', 'vs one stream'];

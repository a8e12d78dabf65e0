/**
 * Uploads and reads together: narinfo latency while 16 uploads stream in, as a ratio to the same
 * server idle in the same run, and upload throughput (one large upload, 16 concurrent ones). Run
 * twice: verification on its threads (the default) and on the event loop (FLOE_VERIFY_THREADS=0),
 * which is what the threads are for. Uploads are sent by curl processes, reads measured by wrk, so
 * the benchmark's own event loop measures nothing.
 */
import { wrkScript } from './wrk.js';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { encodeNix32 } from '../src/nix/nix32.js';
import { serializeNar } from '../src/nix/nar.js';
import { benchOrgToken, serveForBench } from './serve.js';

const CONCURRENT = 16;
const SINGLE_MIB = Number(process.env.BENCH_NAR_MIB ?? 64);
const EACH_MIB = 16;

const LATENCY_SCRIPT = wrkScript(`done = function(summary, latency, requests)
  io.write(string.format("RESULT %f %f %d\\n", latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.status))
end`);

/** wrk, without blocking this process (its curl uploads keep running). Returns p50/p99 in ms. */
function wrkLatency(
  url: string,
  pathsFile: string,
  auth: string,
  duration: string,
  work: string,
): Promise<{ p50: number; p99: number }> {
  const script = path.join(work, 'uploads-bench.lua');
  writeFileSync(script, LATENCY_SCRIPT);
  return new Promise((resolve, reject) => {
    let out = '';
    const c = spawn('wrk', ['-t1', '-c4', `-d${duration}`, '--latency', '-s', script, url], {
      env: { ...process.env, WRK_PATHS: pathsFile, WRK_AUTH: auth },
    });
    c.stdout.on('data', (d) => (out += d));
    c.on('error', reject);
    c.on('close', () => {
      const line = out.split('\n').find((l) => l.startsWith('RESULT '));
      if (!line) return reject(new Error(`unexpected wrk output:\n${out}`));
      const [p50, p99, errors] = line.slice(7).split(' ').map(Number);
      if (errors! > 0)
        return reject(new Error(`narinfo reads answered ${errors} error statuses during the upload benchmark`));
      resolve({ p50: p50!, p99: p99! });
    });
  });
}

/** A batch-upload body (path info line + uncompressed NAR of random bytes) written to a file. */
function uploadFile(work: string, name: string, mib: number): string {
  const nar = serializeNar({ type: 'regular', contents: randomBytes(mib << 20) });
  const meta = {
    storePath: `/nix/store/${encodeNix32(randomBytes(20))}-${name}`,
    narHash: `sha256:${encodeNix32(createHash('sha256').update(nar).digest())}`,
    narSize: nar.length,
    references: [],
  };
  const file = path.join(work, `upload-${name}`);
  writeFileSync(file, Buffer.concat([Buffer.from(JSON.stringify(meta) + '\n'), nar]));
  return file;
}

/**
 * 201 for a new path, 200 for one the slice holds already (the NAR is verified either way).
 * The status is read on 'close', not 'exit': a child may exit before its stdout is drained, and
 * on a busy machine the bench then saw "answered nothing" for uploads the server had answered.
 */
function curlUpload(url: string, token: string, file: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let status = '';
    const c = spawn('curl', [
      '-sS',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      '-X',
      'PUT',
      '-H',
      `Authorization: Bearer ${token}`,
      '-H',
      'Expect:',
      '--data-binary',
      `@${file}`,
      `${url}/api/v1/cache/paths`,
    ]);
    c.stdout.on('data', (d) => (status += d));
    c.on('error', reject);
    c.on('close', () =>
      status === '201' || status === '200' ? resolve() : reject(new Error(`upload answered ${status || 'nothing'}`)),
    );
  });
}

async function seconds(work: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await work();
  return Number(process.hrtime.bigint() - t) / 1e9;
}

/** Rows: [measure, verifier threads, ratio, on the event loop, ratio]. */
export async function uploadsBench(work: string, duration: string): Promise<string[][]> {
  const single = uploadFile(work, 'single', SINGLE_MIB);
  const many = Array.from({ length: CONCURRENT }, (_, i) => uploadFile(work, `many-${i}`, EACH_MIB));
  const columns: Array<Record<string, number>> = [];
  for (const threads of [undefined, '0']) {
    const dataDir = path.join(work, `uploads-data-${threads ?? 'default'}`);
    // The uploads come from one token: give it every slot, so all of them verify at once.
    const slots = {
      FLOE_INGEST_SLOTS: String(CONCURRENT),
      FLOE_INGEST_SLOTS_PER_ORG: String(CONCURRENT),
      FLOE_INGEST_SLOTS_PER_TOKEN: String(CONCURRENT),
    };
    const server = await serveForBench(
      dataDir,
      threads === undefined ? slots : { ...slots, FLOE_VERIFY_THREADS: threads },
    );
    try {
      const { token, auth } = await benchOrgToken(server.url, dataDir, 'uploads');
      const hits: string[] = [];
      for (let i = 0; i < 200; i++) {
        const file = uploadFile(work, `hit-${i}`, 0);
        await curlUpload(server.url, token, file);
        const meta = JSON.parse(readFileSync(file, 'utf8').split('\n')[0]!) as { storePath: string };
        hits.push(`/cache/${path.basename(meta.storePath).slice(0, 32)}.narinfo`);
      }
      const hitsFile = path.join(work, 'uploads-hits.txt');
      writeFileSync(hitsFile, hits.join('\n') + '\n');

      const idle = await wrkLatency(server.url, hitsFile, auth, duration, work);
      const singleSecs = await seconds(() => curlUpload(server.url, token, single));
      const manySecs = await seconds(() => Promise.all(many.map((f) => curlUpload(server.url, token, f))));
      // Reads while 16 uploads stream in, each uploader starting again as soon as it is done.
      let running = true;
      const loops = Promise.all(
        many.map(async (f) => {
          while (running) await curlUpload(server.url, token, f);
        }),
      );
      const busy = await wrkLatency(server.url, hitsFile, auth, duration, work);
      running = false;
      await loops;
      columns.push({
        idleP50: idle.p50,
        idleP99: idle.p99,
        busyP50: busy.p50,
        busyP99: busy.p99,
        single: SINGLE_MIB / singleSecs,
        many: (CONCURRENT * EACH_MIB) / manySecs,
      });
    } finally {
      server.stop();
    }
  }
  const [t, loop] = columns as [Record<string, number>, Record<string, number>];
  const ms = (v: number) => v.toFixed(3);
  return [
    ['narinfo hit p50 (ms), idle', ms(t.idleP50!), '', ms(loop.idleP50!), ''],
    [
      `narinfo hit p50 (ms), ${CONCURRENT} uploads running`,
      ms(t.busyP50!),
      `${(t.busyP50! / t.idleP50!).toFixed(2)}x idle`,
      ms(loop.busyP50!),
      `${(loop.busyP50! / loop.idleP50!).toFixed(2)}x idle`,
    ],
    ['narinfo hit p99 (ms), idle', ms(t.idleP99!), '', ms(loop.idleP99!), ''],
    [
      `narinfo hit p99 (ms), ${CONCURRENT} uploads running`,
      ms(t.busyP99!),
      `${(t.busyP99! / t.idleP99!).toFixed(2)}x idle`,
      ms(loop.busyP99!),
      `${(loop.busyP99! / loop.idleP99!).toFixed(2)}x idle`,
    ],
    [`single upload, ${SINGLE_MIB} MiB (MiB/s)`, t.single!.toFixed(0), '', loop.single!.toFixed(0), ''],
    [
      `${CONCURRENT} concurrent uploads, ${EACH_MIB} MiB each (MiB/s in all)`,
      t.many!.toFixed(0),
      `${(t.many! / t.single!).toFixed(2)}x single`,
      loop.many!.toFixed(0),
      `${(loop.many! / loop.single!).toFixed(2)}x single`,
    ],
  ];
}

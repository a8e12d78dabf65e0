/**
 * What the policy engine costs on the narinfo hot path: the same server, the same 100,000 stored
 * paths and the same token, measured first with no org policies (guardrails and Floe's baseline
 * only, the allow-all build) and with 100 org policies active, three runs of each, alternating
 * (medians). Target: within 10%.
 * Also the uncached price of one Cedar evaluation at 100 policies, in process.
 */
import { wrkScript } from './wrk.js';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { encodeNix32 } from '../src/nix/nix32.js';
import { openStorage } from '../src/storage/open.js';
import { decide } from '../src/policy/authorize.js';
import { CedarPolicySet, validatePolicyFile } from '../src/policy/cedar.js';
import { serveForBench } from './serve.js';

const PATHS = Number(process.env.BENCH_POLICY_PATHS ?? 100_000);

export function benchPolicies(org: string, n: number): string {
  const out: string[] = [];
  for (let i = 0; i < n - 2; i++) {
    out.push(
      `@id("slice-${i}-geo")\nforbid (principal, action == Floe::Action::"cache.read", resource == Floe::Slice::"${org}/s${i}") unless { context.country == "DE" || context.ip.isInRange(ip("10.${i % 250}.0.0/16")) };`,
    );
  }
  out.push(
    `@id("short-tokens")\nforbid (principal, action, resource) when { principal.lifetimeSeconds > 30 * 24 * 3600 };`,
  );
  out.push(
    `@id("protected-pushes")\nforbid (principal, action == Floe::Action::"cache.write", resource) when { principal.authMethod == "github" } unless { principal.claims has ref_protected && principal.claims.ref_protected == "true" };`,
  );
  return out.join('\n\n');
}

interface Row {
  label: string;
  without: number;
  with: number;
}

export async function policyBench(work: string, duration: string): Promise<Row[]> {
  const dataDir = path.join(work, 'policy-data');
  // One public URL across the restart below: it is the token issuer.
  const env = { FLOE_PUBLIC_URL: 'http://floe-policy-bench.invalid' };
  let server = await serveForBench(dataDir, env);
  const admin = readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim();
  const call = async (method: string, p: string, body: unknown) => {
    const res = await fetch(`${server.url}${p}`, {
      method,
      headers: { Authorization: `Bearer ${admin}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${await res.text()}`);
    return res.json() as Promise<Record<string, unknown>>;
  };
  await call('POST', '/api/v1/orgs', { name: 'pol' });
  const token = (await call('POST', '/api/v1/tokens', { org: 'pol', scopes: ['read'] })).token as string;
  server.stop();

  // Seed the paths straight into the database: uploading 100k NARs would measure ingestion.
  const storage = await openStorage({ dataDir });
  const slice = await storage.db
    .selectFrom('slices')
    .innerJoin('orgs', 'orgs.id', 'slices.org_id')
    .select('slices.id')
    .where('orgs.name', '=', 'pol')
    .executeTakeFirstOrThrow();
  const now = new Date().toISOString();
  const hashes: string[] = [];
  for (let i = 0; i < PATHS; i += 1000) {
    const nars = [];
    const rows = [];
    for (let j = i; j < Math.min(PATHS, i + 1000); j++) {
      const hash = encodeNix32(randomBytes(20));
      const narHash = encodeNix32(createHash('sha256').update(hash).digest());
      hashes.push(hash);
      nars.push({ nar_hash: narHash, nar_size: 512, file_hash: narHash, file_size: 300, created_at: now });
      rows.push({
        slice_id: slice.id,
        hash_part: hash,
        store_path: `${hash}-p${j}`,
        nar_hash: narHash,
        nar_size: 512,
        refs: '',
        deriver: null,
        ca: null,
        sigs: '',
        narinfo: `StorePath: /nix/store/${hash}-p${j}\nURL: nar/${narHash}.nar.zst\nCompression: zstd\nNarHash: sha256:${narHash}\nNarSize: 512\nReferences: \n`,
        uploaded_by: 'bench',
        created_at: now,
      });
    }
    await storage.db.insertInto('nars').values(nars).execute();
    await storage.db.insertInto('paths').values(rows).execute();
  }
  await storage.close();

  server = await serveForBench(dataDir, env);
  try {
    const script = path.join(work, 'policy.lua');
    writeFileSync(
      script,
      wrkScript(`done = function(summary, latency)
  io.write(string.format("RESULT %f %f %f %d\\n", summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.status))
end`),
    );
    const file = path.join(work, 'policy-paths.txt');
    writeFileSync(
      file,
      hashes
        .filter((_, k) => k % 50 === 0)
        .map((h) => `/cache/${h}.narinfo`)
        .join('\n') + '\n',
    );
    const auth = `Basic ${Buffer.from(`:${token}`).toString('base64')}`;
    const run = (connections: number) => {
      const out = execFileSync(
        'wrk',
        ['-t1', `-c${connections}`, `-d${duration}`, '--latency', '-s', script, server.url],
        { env: { ...process.env, WRK_PATHS: file, WRK_AUTH: auth }, encoding: 'utf8' },
      );
      const [rps, p50, p99, errors] = out
        .split('\n')
        .find((l) => l.startsWith('RESULT '))!
        .slice(7)
        .split(' ')
        .map(Number);
      if (errors! > 0) throw new Error(`${errors} error statuses in the policy benchmark`);
      return { rps: rps!, p50: p50!, p99: p99! };
    };
    run(8); // warm-up: page cache, JIT, memos (discarded)
    // Alternating, so that drift (the machine's load, JIT, memos filling) lands on both sides:
    // none, 100, 100, none, none, 100 (an empty file deactivates an org's policies).
    const apply = async (source: string) => {
      const res = await fetch(`${server.url}/api/v1/orgs/pol/policies`, {
        method: 'PUT',
        headers: { Authorization: `Bearer ${admin}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ source }),
      });
      if (res.status !== 201) throw new Error(`applying policies: ${res.status} ${await res.text()}`);
    };
    const hundred = benchPolicies('pol', 100);
    const samples = {
      without: [] as Array<{ one: ReturnType<typeof run>; many: ReturnType<typeof run> }>,
      with: [] as Array<{ one: ReturnType<typeof run>; many: ReturnType<typeof run> }>,
    };
    let active = false;
    for (const withPolicies of [false, true, true, false, false, true]) {
      if (withPolicies !== active) {
        await apply(withPolicies ? hundred : '');
        active = withPolicies;
      }
      (withPolicies ? samples.with : samples.without).push({ one: run(1), many: run(32) });
    }
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const pick = (
      side: 'without' | 'with',
      f: (s: { one: ReturnType<typeof run>; many: ReturnType<typeof run> }) => number,
    ) => med(samples[side].map(f));

    // Uncached: one Cedar evaluation per call (what the first request of a caller pays).
    const parsed = validatePolicyFile(benchPolicies('pol', 100), 'pol');
    const set = { orgId: 'o', version: 1, set: new CedarPolicySet('bench', parsed.policies) };
    const p = {
      kind: 'token' as const,
      tokenId: 't',
      subject: 's',
      org: { id: 'o', name: 'pol' },
      scopes: new Set(['read' as const]),
      slices: null,
      issuedAt: 0,
      expiresAt: 3600,
      client: { ip: '10.1.2.3', country: 'DE' },
    };
    const r = {
      type: 'slice' as const,
      org: { id: 'o', name: 'pol' },
      slice: { id: 's', name: 'default', public: false },
    };
    for (let k = 0; k < 200; k++) decide(p, 'cache.read', r, {}, set);
    const t0 = performance.now();
    const N = 2000;
    for (let k = 0; k < N; k++) decide(p, 'cache.read', r, {}, set);
    const uncachedUs = ((performance.now() - t0) / N) * 1000;
    const t1 = performance.now();
    for (let k = 0; k < N * 10; k++) decide(p, 'cache.read', r, {});
    const baselineUs = ((performance.now() - t1) / (N * 10)) * 1000;

    return [
      {
        label: `narinfo hit latency, 1 connection, p50 (ms), ${PATHS} paths`,
        without: pick('without', (x) => x.one.p50),
        with: pick('with', (x) => x.one.p50),
      },
      {
        label: 'narinfo hit latency, 1 connection, p99 (ms)',
        without: pick('without', (x) => x.one.p99),
        with: pick('with', (x) => x.one.p99),
      },
      {
        label: 'narinfo hits, 32 connections (req/s)',
        without: pick('without', (x) => x.many.rps),
        with: pick('with', (x) => x.many.rps),
      },
      {
        label: 'narinfo hit latency, 32 connections, p50 (ms)',
        without: pick('without', (x) => x.many.p50),
        with: pick('with', (x) => x.many.p50),
      },
      { label: 'one decision in process, uncached (µs)', without: baselineUs, with: uncachedUs },
    ];
  } finally {
    server.stop();
  }
}

/**
 * The folder layout is the architecture; this test keeps it honest by reading every import under
 * src/ and failing on a dependency that points the wrong way.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './helpers/server.js';

const SRC = path.join(REPO_ROOT, 'src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

/** [file relative to src, import specifier resolved relative to src (or the bare module), type-only] */
function imports(): Array<[string, string, boolean]> {
  const out: Array<[string, string, boolean]> = [];
  for (const file of sourceFiles(SRC)) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:^|\n)\s*(import|export)(\s+type)?[^'"]*?from\s+['"]([^'"]+)['"]/g)) {
      const spec = m[3]!;
      const target = spec.startsWith('.') ? path.relative(SRC, path.resolve(path.dirname(file), spec)) : spec;
      out.push([path.relative(SRC, file), target, m[2] !== undefined]);
    }
  }
  return out;
}

const all = imports();
const from = (prefix: string) => all.filter(([f]) => f.startsWith(prefix));

describe('architecture', () => {
  it('finds the sources', () => {
    expect(all.length).toBeGreaterThan(50);
  });

  it('src/nix is pure: no I/O modules, nothing from the rest of Floe but errors', () => {
    const bad = from('nix/').filter(
      ([, t]) =>
        /^(node:)?(fs|fs\/promises|net|http|https|child_process|dgram)$/.test(t) ||
        (!t.startsWith('nix/') && !t.startsWith('node:') && t !== 'errors.js'),
    );
    expect(bad).toEqual([]);
  });

  it('policy decisions are pure: no storage, HTTP or I/O', () => {
    const bad = from('policy/').filter(
      ([, t]) => t.startsWith('storage/') || t.startsWith('http/') || /^(node:)?(fs|net|http)/.test(t),
    );
    expect(bad).toEqual([]);
  });

  // The local administration commands (backup/restore, migrate --status) run on the server's own
  // machine against its data, like `floe serve`: they are composition roots too.
  const LOCAL_ADMIN = new Set(['cli/backup.ts', 'cli/migrate-status.ts']);
  const ROOTS = new Set(['server.ts', 'migrate.ts', 'supervisor.ts', ...LOCAL_ADMIN]);

  it('only the composition roots (server.ts, migrate.ts, supervisor.ts, local admin commands) and storage itself pick concrete storage backends', () => {
    const bad = all.filter(
      ([f, t]) => /^storage\/(open|sql\/|blob\/)/.test(t) && !ROOTS.has(f) && !f.startsWith('storage/'),
    );
    expect(bad).toEqual([]);
  });

  it('domain code never imports the HTTP layer, the web interface or the CLI', () => {
    const bad = all.filter(
      ([f, t]) =>
        /^(admin|cache|identity|policy|org|storage|nix|registry|audit)\//.test(f) && /^(http|cli|web)\//.test(t),
    );
    expect(bad).toEqual([]);
  });

  it('the web interface never reaches storage backends or the CLI', () => {
    const bad = from('web/').filter(([, t]) => /^(storage|cli)\//.test(t));
    expect(bad).toEqual([]);
  });

  it('http/ never imports web/ (the composition root plugs the web in), web/ never imports http/routes/', () => {
    expect(from('http/').filter(([, t]) => t.startsWith('web/'))).toEqual([]);
    expect(from('web/').filter(([, t]) => t.startsWith('http/routes/'))).toEqual([]);
  });

  it('src/wire is pure: the JSON contracts of CLI and server import nothing but zod', () => {
    const bad = from('wire/').filter(([, t]) => t !== 'zod' && !t.startsWith('wire/'));
    expect(bad).toEqual([]);
    expect(from('cli/').some(([, t]) => t.startsWith('wire/'))).toBe(true);
    expect(from('http/').some(([, t]) => t.startsWith('wire/'))).toBe(true);
  });

  // The modules docs/ARCHITECTURE.md calls PURE: formats, decisions and plans, computed from their
  // arguments. They may use node:crypto/node:buffer/node:util and each other, never I/O or services.
  const PURE = [
    /^nix\//,
    /^wire\//,
    /^policy\/(actions|authorize|cedar|guardrails|hypothetical|network|schema)\.ts$/,
    /^org\/names\.ts$/,
    /^cache\/blob-keys\.ts$/,
    /^audit\/chain\.ts$/,
    /^storage\/(failures|acks)\.ts$/,
    /^identity\/(credentials|trust|lifetime|destination)\.ts$/,
    /^registry\/(version|inventory)\.ts$/,
    /^cache\/(view|link-policy|render|upstream-verify|reachability|quota)\.ts$/,
    /^http\/route-table\.ts$/,
    /^cli\/(nix-setup|trust-spec|netrc|push-progress|errors)\.ts$/,
    /^config-file\.ts$/,
  ];
  const isPure = (f: string) => PURE.some((re) => re.test(f));
  const IO_MODULES =
    /^(node:)?(fs|fs\/promises|net|http|https|http2|tls|dgram|dns|child_process|cluster|worker_threads|readline|os)$/;

  it('the PURE modules import no I/O and only other pure modules (or errors); types may come from anywhere', () => {
    expect(all.filter(([f]) => isPure(f)).length).toBeGreaterThan(30);
    const local = (t: string) => t.replace(/\.js$/, '.ts');
    const bad = all.filter(
      ([f, t, typeOnly]) =>
        isPure(f) &&
        !typeOnly &&
        (IO_MODULES.test(t) ||
          (t.includes('/') && !t.startsWith('node:') && !t.startsWith('@') && !isPure(local(t)) && t !== 'errors.js')),
    );
    expect(bad).toEqual([]);
  });

  it('CLI commands print through their io (so main() runs in-process), never console.*', () => {
    const printing = sourceFiles(path.join(SRC, 'cli')).filter((f) => /\bconsole\.\w+\(/.test(readFileSync(f, 'utf8')));
    expect(printing.map((f) => path.relative(SRC, f))).toEqual([]);
  });

  it('the CLI talks to servers over HTTP; only `serve` reaches the server composition root', () => {
    const bad = from('cli/').filter(
      ([f, t]) => /^(admin|cache|identity|policy|org|storage|http)\//.test(t) && !LOCAL_ADMIN.has(f),
    );
    expect(bad).toEqual([]);
  });
});

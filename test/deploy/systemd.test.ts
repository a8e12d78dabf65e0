/**
 * deploy/systemd/floe.service passes `systemd-analyze verify` with no warning, stops the way
 * Floe drains (SIGTERM, and a stop timeout longer than FLOE_SHUTDOWN_GRACE_SECONDS), and its
 * hardening block is the same list of settings as the NixOS module's (nix/module.nix), so the two
 * cannot drift apart. Every FLOE_* variable either file sets is one Floe reads.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FLOE_BIN, REPO_ROOT } from '../helpers/server.js';

const UNIT = readFileSync(path.join(REPO_ROOT, 'deploy/systemd/floe.service'), 'utf8');
const MODULE = readFileSync(path.join(REPO_ROOT, 'nix/module.nix'), 'utf8');
const hasAnalyze = spawnSync('sh', ['-c', 'command -v systemd-analyze']).status === 0;

function between(text: string, begin: string, end: string): string[] {
  const lines = text.split('\n').map((l) => l.trim());
  const from = lines.indexOf(begin);
  const to = lines.indexOf(end);
  if (from < 0 || to < from) throw new Error(`no "${begin}" … "${end}" block`);
  return lines.slice(from + 1, to).filter((l) => l !== '' && !l.startsWith('#'));
}

/** The unit's block as `Key=Value` lines. */
function unitHardening(): string[] {
  return between(UNIT, '# hardening: begin', '# hardening: end');
}

/**
 * The module's block rendered the way NixOS writes serviceConfig into a unit: booleans as yes/no,
 * lists joined by spaces, the two expressions on shutdownGraceSeconds evaluated at its default.
 */
function moduleHardening(): string[] {
  const grace = Number(/shutdownGraceSeconds = mkOption \{[^}]*default = (\d+);/s.exec(MODULE)?.[1]);
  expect(grace).toBeGreaterThan(0);
  return between(MODULE, '# hardening: begin', '# hardening: end').map((line) => {
    const m = /^(\w+) = (.*);$/.exec(line);
    if (!m) throw new Error(`nix/module.nix: cannot read ${JSON.stringify(line)} (one \`Key = value;\` per line)`);
    const [, key, raw] = m as unknown as [string, string, string];
    const value = raw
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the Nix source text, not a template
      .replace('${toString cfg.shutdownGraceSeconds}', String(grace))
      .replace(/^cfg\.shutdownGraceSeconds \+ (\d+)$/, (_, n: string) => String(grace + Number(n)));
    const strings = (v: string) => [...v.matchAll(/"([^"]*)"/g)].map((s) => s[1]!);
    if (value === 'true') return `${key}=yes`;
    if (value === 'false') return `${key}=no`;
    if (value.startsWith('[')) return `${key}=${strings(value).join(' ')}`;
    if (value.startsWith('"')) return `${key}=${strings(value)[0]}`;
    if (/^\d+$/.test(value)) return `${key}=${value}`;
    throw new Error(`nix/module.nix: ${key} = ${raw} is not a literal the test can compare`);
  });
}

function setting(lines: string[], key: string): string | undefined {
  return lines.find((l) => l.startsWith(`${key}=`))?.slice(key.length + 1);
}

describe('systemd unit', () => {
  it.skipIf(!hasAnalyze && !process.env.CI)('passes systemd-analyze verify without a warning', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'floe-unit-'));
    try {
      // /usr/local/bin/floe exists once the package is installed: verify the unit with this checkout's launcher.
      const unit = path.join(dir, 'floe.service');
      writeFileSync(unit, UNIT.replace('ExecStart=/usr/local/bin/floe serve', `ExecStart=${FLOE_BIN} serve`));
      const r = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr.trim()).toBe('');
      // The check is real: a misspelt key is reported.
      const misspeltUnit = UNIT.replace('NoNewPrivileges=yes', 'NoNewPrivilege=yes');
      writeFileSync(unit, misspeltUnit.replace('/usr/local/bin/floe', FLOE_BIN));
      const misspelt = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8' });
      expect(misspelt.stderr).toMatch(/Unknown key 'NoNewPrivilege'/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('is hardened, keeps secrets in an environment file, and stops by draining', () => {
    const h = unitHardening();
    expect(setting(h, 'DynamicUser')).toBe('yes');
    expect(setting(h, 'StateDirectory')).toBe('floe');
    expect(setting(h, 'ProtectSystem')).toBe('strict');
    expect(setting(h, 'NoNewPrivileges')).toBe('yes');
    expect(setting(h, 'CapabilityBoundingSet')).toBe('');
    expect(UNIT).toMatch(/^EnvironmentFile=-?\/etc\/floe\/floe\.env$/m);
    expect(UNIT).toMatch(/^Environment=FLOE_DATA_DIR=\/var\/lib\/floe$/m);
    expect(setting(h, 'KillSignal')).toBe('SIGTERM');
    const grace = Number(/FLOE_SHUTDOWN_GRACE_SECONDS=(\d+)/.exec(setting(h, 'Environment') ?? '')?.[1]);
    expect(grace).toBeGreaterThan(0);
    expect(Number(setting(h, 'TimeoutStopSec'))).toBeGreaterThanOrEqual(grace + 5);
  });

  it('has the same hardening as the NixOS module, setting for setting', () => {
    expect(moduleHardening().sort()).toEqual(unitHardening().sort());
  });

  it('sets only FLOE_* variables that Floe reads', () => {
    const grep = execFileSync('grep', ['-rhoE', 'FLOE_[A-Z0-9_]+', path.join(REPO_ROOT, 'src')], { encoding: 'utf8' });
    const read = new Set(grep.split('\n'));
    const set = [...`${UNIT}\n${MODULE}`.matchAll(/\b(FLOE_[A-Z0-9_]+)/g)].map((m) => m[1]!);
    expect(set.length).toBeGreaterThan(5);
    expect(set.filter((name) => !read.has(name))).toEqual([]);
  });
});

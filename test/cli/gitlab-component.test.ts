/**
 * The GitLab CI/CD catalog component (ci/gitlab/templates/floe.yml) is the template
 * (ci/gitlab/floe.gitlab-ci.yml, whose scripts gitlab-template.test.ts runs against a real server
 * and real Nix) with inputs: the same before_script and after_script byte for byte, every input
 * declared under `spec: inputs:` used and every one used declared, and with the inputs' defaults
 * interpolated the job gets the template's variables (plus FLOE_SERVER from the `server` input).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/server.js';

const template = await readFile(path.join(REPO_ROOT, 'ci/gitlab/floe.gitlab-ci.yml'), 'utf8');
const component = await readFile(path.join(REPO_ROOT, 'ci/gitlab/templates/floe.yml'), 'utf8');

/** A `- |` script block under `  <key>:` of the `.floe` job (both files keep to that shape). */
function block(text: string, key: string): string {
  const lines = text.split('\n');
  const start = lines.indexOf(`  ${key}:`);
  expect(start, key).toBeGreaterThan(0);
  expect(lines[start + 1]).toBe('    - |');
  const body: string[] = [];
  for (const l of lines.slice(start + 2)) {
    if (l !== '' && !l.startsWith('      ')) break;
    body.push(l);
  }
  return body.join('\n');
}

function variables(text: string): Record<string, string> {
  const lines = text.split('\n');
  const out: Record<string, string> = {};
  for (const l of lines.slice(lines.indexOf('  variables:') + 1)) {
    const m = /^ {4}(\w+): "(.*)"$/.exec(l);
    if (!m) break;
    out[m[1]!] = m[2]!;
  }
  return out;
}

/** The `spec: inputs:` header (before `---`): each input's default, undefined when required. */
function inputs(text: string): Map<string, string | undefined> {
  const [header] = text.split('\n---\n');
  expect(header).toMatch(/^spec:\n {2}inputs:$/m);
  const found = new Map<string, string | undefined>();
  let current: string | undefined;
  for (const l of header!.split('\n')) {
    const name = /^ {4}([\w-]+):$/.exec(l);
    if (name) found.set((current = name[1]!), undefined);
    const def = /^ {6}default: (.*)$/.exec(l);
    if (def && current) found.set(current, def[1]!.replace(/^"(.*)"$/, '$1'));
  }
  return found;
}

const interpolate = (text: string, values: Record<string, string>) =>
  text.replace(/\$\[\[ inputs\.([\w-]+) \]\]/g, (_, k: string) => values[k] ?? `<missing ${k}>`);

describe('GitLab CI/CD component', () => {
  const [, jobs] = component.split('\n---\n');

  it('runs exactly the template scripts', () => {
    expect(block(jobs!, 'before_script')).toBe(block(template, 'before_script'));
    expect(block(jobs!, 'after_script')).toBe(block(template, 'after_script'));
    expect(jobs).toMatch(/^\.floe:$/m);
  });

  it('declares every input it uses and uses every input it declares; `server` is required', () => {
    const declared = inputs(component);
    const used = new Set([...jobs!.matchAll(/\$\[\[ inputs\.([\w-]+) \]\]/g)].map((m) => m[1]!));
    expect([...used].sort()).toEqual([...declared.keys()].sort());
    expect(declared.get('server')).toBeUndefined();
    expect(jobs).toMatch(/aud: "\$\[\[ inputs\.server \]\]"/);
  });

  it("with the defaults, the job has the template's variables", () => {
    const values: Record<string, string> = { server: 'https://floe.example.com' };
    for (const [k, v] of inputs(component)) if (v !== undefined) values[k] = v;
    const vars = variables(interpolate(jobs!, values));
    expect(vars).toEqual({ ...variables(template), FLOE_SERVER: 'https://floe.example.com' });
  });
});

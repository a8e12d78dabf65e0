/** `floe policy …` and `floe signer …`: an org's access policies as code, and the signing keys they may name. */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { CliError, CliExit, apiRequest, clientOptions } from './client.js';
import type { CommandContext } from './commands/context.js';

interface Problem {
  policyId?: string;
  message: string;
  line?: number;
  column?: number;
}

const orgPath = (org: string, rest: string) => `/api/v1/orgs/${encodeURIComponent(org)}${rest}`;

async function readSource(ctx: CommandContext, file: string): Promise<string> {
  try {
    return file === '-' ? await ctx.readStdin() : await readFile(file, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read ${file}: ${(err as Error).message}`);
  }
}

function formatProblems(file: string, problems: Problem[]): string {
  return problems
    .map(
      (p) =>
        `${file}${p.line ? `:${p.line}:${p.column ?? 1}` : ''}: ${p.policyId ? `[${p.policyId}] ` : ''}${p.message}`,
    )
    .join('\n');
}

async function validate(opts: { server?: string }, org: string, file: string, source: string): Promise<string[]> {
  const res = await apiRequest<{ valid: boolean; policyIds: string[]; problems: Problem[] }>(
    clientOptions(opts),
    'POST',
    orgPath(org, '/policies/validate'),
    { source },
  );
  if (!res.valid)
    throw new CliError(
      `${file} does not validate against Floe's policy schema (\`floe policy schema\` prints it):\n${formatProblems(file, res.problems)}`,
    );
  return res.policyIds;
}

/** Parses `slice:NAME`, `flake:NAME[:visibility]` or `org`. */
function parseResource(text: string): Record<string, unknown> {
  if (text === 'org') return { org: true };
  const [kind, name, visibility] = text.split(':');
  if (kind === 'slice' && name) return { slice: name };
  if (kind === 'flake' && name) return { flake: name, ...(visibility ? { visibility } : {}) };
  throw new CliError(
    `--resource must be slice:NAME, flake:NAME[:public|unlisted|private] or org; got ${JSON.stringify(text)}`,
  );
}

interface TestResult {
  name: string;
  decision: string;
  reason: string;
  decidedBy: string[];
  expected?: string;
  pass?: boolean;
}

export function registerPolicyCommands(program: Command, ctx: CommandContext): void {
  const { serverOption } = ctx;
  const policy = program
    .command('policy')
    .description("an org's access policies (Cedar): validate, test, apply, explain, roll back");

  policy
    .command('schema')
    .description('print the Cedar schema policies are written against')
    .addOption(serverOption())
    .action(async (opts: { server?: string }) => {
      const client = clientOptions(opts);
      const res = await fetch(`${client.server}/api/v1/policy/schema`).catch((err: Error) => {
        throw new CliError(`cannot reach ${client.server}: ${err.message}`);
      });
      ctx.io.stdout.write(await res.text());
    });

  policy
    .command('validate <file>')
    .description('check a policy file against the schema; prints FILE:LINE:COLUMN problems')
    .addOption(serverOption())
    .requiredOption('--org <org>', 'org')
    .action(async (file: string, opts: { server?: string; org: string }) => {
      const ids = await validate(opts, opts.org, file, await readSource(ctx, file));
      ctx.out(
        `${file}: valid (${ids.length} ${ids.length === 1 ? 'policy' : 'policies'}: ${ids.join(', ') || 'none'})`,
      );
    });

  policy
    .command('apply <file>')
    .description("validate, then make the file the org's active policies (a new version)")
    .addOption(serverOption())
    .requiredOption('--org <org>', 'org')
    .option('-m, --message <text>', 'why (kept in the history and the audit log)')
    .option('--json', 'print JSON')
    .action(async (file: string, opts: { server?: string; org: string; message?: string; json?: boolean }) => {
      const source = await readSource(ctx, file);
      await validate(opts, opts.org, file, source);
      const v = await apiRequest<{ version: number; sha256: string; policyIds: string[] }>(
        clientOptions(opts),
        'PUT',
        orgPath(opts.org, '/policies'),
        { source, ...(opts.message ? { message: opts.message } : {}) },
      );
      ctx.out(
        opts.json
          ? JSON.stringify(v)
          : `${opts.org}: policies version ${v.version} active (${v.policyIds.length} policies); every replica applies it within a second`,
      );
    });

  policy
    .command('show')
    .description('print the active policy file (or --version N)')
    .addOption(serverOption())
    .requiredOption('--org <org>', 'org')
    .option('--version <n>', 'an older version')
    .action(async (opts: { server?: string; org: string; version?: string }) => {
      const res = await apiRequest<{ version: number; source: string }>(
        clientOptions(opts),
        'GET',
        orgPath(opts.org, opts.version ? `/policies/versions/${Number(opts.version)}` : '/policies'),
      );
      ctx.io.stdout.write(res.source.endsWith('\n') || res.source === '' ? res.source : `${res.source}\n`);
      if (res.version === 0)
        ctx.err(`floe: ${opts.org} has no policies: Floe's defaults apply (same-org tokens within their scopes)`);
    });

  policy
    .command('history')
    .description('list policy versions, newest first')
    .addOption(serverOption())
    .requiredOption('--org <org>', 'org')
    .option('--json', 'print JSON')
    .action(async (opts: { server?: string; org: string; json?: boolean }) => {
      const res = await apiRequest<{
        versions: Array<{
          version: number;
          createdAt: string;
          createdBy: string;
          message: string | null;
          policyIds: string[];
        }>;
      }>(clientOptions(opts), 'GET', orgPath(opts.org, '/policies/versions'));
      if (opts.json) return ctx.out(JSON.stringify(res.versions));
      for (const v of res.versions)
        ctx.out(
          `v${v.version}  ${v.createdAt}  ${v.createdBy}  ${v.policyIds.length} policies${v.message ? `  ${v.message}` : ''}`,
        );
    });

  policy
    .command('rollback <version>')
    .description('make an earlier version active again (recorded as a new version)')
    .addOption(serverOption())
    .requiredOption('--org <org>', 'org')
    .action(async (version: string, opts: { server?: string; org: string }) => {
      if (!/^\d+$/.test(version))
        throw new CliError(`version must be a number (see \`floe policy history\`), got ${JSON.stringify(version)}`);
      const v = await apiRequest<{ version: number }>(
        clientOptions(opts),
        'POST',
        orgPath(opts.org, '/policies/rollback'),
        { version: Number(version) },
      );
      ctx.out(`${opts.org}: version ${version} is active again as version ${v.version}`);
    });

  policy
    .command('test <cases>')
    .description(
      'run a JSON file of requests with expected decisions ({"cases": [...]}) against the active policies or --policies FILE; exits 1 on a mismatch',
    )
    .addOption(serverOption())
    .requiredOption('--org <org>', 'org')
    .option('--policies <file>', 'test this policy file instead of the active one (nothing is applied)')
    .option('--json', 'print JSON')
    .action(async (casesFile: string, opts: { server?: string; org: string; policies?: string; json?: boolean }) => {
      let cases: unknown;
      try {
        const parsed = JSON.parse(await readSource(ctx, casesFile)) as unknown;
        cases = Array.isArray(parsed) ? parsed : (parsed as { cases?: unknown }).cases;
      } catch (err) {
        throw new CliError(`${casesFile}: not JSON (${(err as Error).message})`);
      }
      if (!Array.isArray(cases)) throw new CliError(`${casesFile}: expected {"cases": [...]} or an array of cases`);
      const source = opts.policies ? await readSource(ctx, opts.policies) : undefined;
      if (source !== undefined) await validate(opts, opts.org, opts.policies!, source);
      const res = await apiRequest<{ passed: number; failed: number; results: TestResult[] }>(
        clientOptions(opts),
        'POST',
        orgPath(opts.org, '/policies/test'),
        { cases, ...(source !== undefined ? { source } : {}) },
      );
      if (opts.json) ctx.out(JSON.stringify(res));
      else {
        for (const r of res.results)
          ctx.out(
            `${r.pass === false ? 'FAIL' : r.pass ? 'ok  ' : '    '}  ${r.name}: ${r.decision}${r.expected && r.pass === false ? ` (expected ${r.expected})` : ''} by ${r.decidedBy.join(', ')}: ${r.reason}`,
          );
        ctx.out(`${res.passed} passed, ${res.failed} failed`);
      }
      if (res.failed > 0) throw new CliExit(1);
    });

  policy
    .command('explain')
    .description('show the decision for one request and which policy made it')
    .addOption(serverOption())
    .requiredOption('--org <org>', 'org whose resource is accessed')
    .requiredOption('--action <action>', 'cache.read, cache.write, flake.read, flake.publish or org.admin')
    .requiredOption('--resource <resource>', 'slice:NAME, flake:NAME[:visibility] or org')
    .option('--anonymous', 'as an anonymous client')
    .option('--principal-org <org>', "the caller's org (default: --org)")
    .option('--scopes <scopes>', "the caller's scopes, comma-separated", 'read')
    .option('--claim <name=value...>', 'an identity claim of the caller (repeatable)')
    .option('--provider <provider>', 'identity provider of the claims (github, gitlab, oidc, aws)', 'github')
    .option('--ip <address>', 'client address')
    .option('--country <code>', 'client country (ISO 3166 two letters)')
    .option('--policies <file>', 'explain with this policy file instead of the active one')
    .option('--json', 'print JSON')
    .action(
      async (opts: {
        server?: string;
        org: string;
        action: string;
        resource: string;
        anonymous?: boolean;
        principalOrg?: string;
        scopes: string;
        claim?: string[];
        provider: string;
        ip?: string;
        country?: string;
        policies?: string;
        json?: boolean;
      }) => {
        const claims: Record<string, string> = {};
        for (const c of opts.claim ?? []) {
          const eq = c.indexOf('=');
          if (eq <= 0) throw new CliError(`--claim must be name=value, got ${JSON.stringify(c)}`);
          claims[c.slice(0, eq)] = c.slice(eq + 1);
        }
        const principal = opts.anonymous
          ? { anonymous: true }
          : {
              ...(opts.principalOrg ? { org: opts.principalOrg } : {}),
              scopes: opts.scopes.split(',').map((s) => s.trim()),
              ...(Object.keys(claims).length
                ? { identity: { provider: opts.provider, issuer: 'explain', claims }, authMethod: opts.provider }
                : {}),
            };
        const source = opts.policies ? await readSource(ctx, opts.policies) : undefined;
        const res = await apiRequest<{ results: TestResult[] }>(
          clientOptions(opts),
          'POST',
          orgPath(opts.org, '/policies/test'),
          {
            cases: [
              {
                principal,
                action: opts.action,
                resource: parseResource(opts.resource),
                client: { ...(opts.ip ? { ip: opts.ip } : {}), ...(opts.country ? { country: opts.country } : {}) },
              },
            ],
            ...(source !== undefined ? { source } : {}),
          },
        );
        const r = res.results[0]!;
        if (opts.json) return ctx.out(JSON.stringify(r));
        ctx.out(`${r.decision.toUpperCase()}: ${r.reason}\ndecided by: ${r.decidedBy.join(', ')}`);
      },
    );

  const signer = program
    .command('signer')
    .description(
      'Nix signing keys an org trusts: only signatures verifying against one count in policies (context.narinfoSignatures)',
    );
  signer
    .command('add <publicKey>')
    .description('trust a key, as in nix.conf trusted-public-keys (name:base64)')
    .addOption(serverOption())
    .requiredOption('--org <org>', 'org')
    .action(async (publicKey: string, opts: { server?: string; org: string }) => {
      const s = await apiRequest<{ name: string }>(clientOptions(opts), 'POST', orgPath(opts.org, '/signers'), {
        publicKey,
      });
      ctx.out(`${opts.org} trusts signatures by ${s.name}`);
    });
  signer
    .command('list')
    .description("list the org's trusted signing keys")
    .addOption(serverOption())
    .requiredOption('--org <org>', 'org')
    .option('--json', 'print JSON')
    .action(async (opts: { server?: string; org: string; json?: boolean }) => {
      const res = await apiRequest<{
        signers: Array<{ name: string; publicKey: string; addedBy: string; createdAt: string }>;
      }>(clientOptions(opts), 'GET', orgPath(opts.org, '/signers'));
      if (opts.json) return ctx.out(JSON.stringify(res.signers));
      for (const s of res.signers) ctx.out(`${s.publicKey}  added ${s.createdAt} by ${s.addedBy}`);
    });
  signer
    .command('remove <name>')
    .description('stop trusting a key')
    .addOption(serverOption())
    .requiredOption('--org <org>', 'org')
    .action(async (name: string, opts: { server?: string; org: string }) => {
      await apiRequest(clientOptions(opts), 'DELETE', orgPath(opts.org, `/signers/${encodeURIComponent(name)}`));
      ctx.out(`${opts.org} no longer trusts ${name}`);
    });
}

/** `floe audit …`: the audit trail: who did what, what was refused, who read what; and its verification. */
import type { Command } from 'commander';
import { CliError, apiRequest, clientOptions } from './client.js';
import type { CommandContext } from './commands/context.js';

const orgPath = (org: string, rest: string) => `/api/v1/orgs/${encodeURIComponent(org)}${rest}`;

export function registerAuditCommands(program: Command, ctx: CommandContext): void {
  const { serverOption } = ctx;
  const audit = program.command('audit').description('the audit trail: who did what, what was refused, who read what');
  audit
    .command('log', { isDefault: true })
    .description("query an org's audit log (or the whole server's, as server admin without --org)")
    .addOption(serverOption())
    .option('--org <org>', 'org')
    .option('--action <action>', 'an action (cache.write) or a prefix ending in a dot (policy.)')
    .option('--outcome <outcome>', 'allow, deny or event')
    .option('--actor <text>', 'actors containing this text')
    .option('--since <time>', 'ISO date or time')
    .option('--until <time>', 'ISO date or time')
    .option('--limit <n>', 'at most this many entries', '100')
    .option('--jsonl', 'one JSON object per line (for export; pages through everything matching)')
    .action(
      async (opts: {
        server?: string;
        org?: string;
        action?: string;
        outcome?: string;
        actor?: string;
        since?: string;
        until?: string;
        limit: string;
        jsonl?: boolean;
      }) => {
        const client = clientOptions(opts);
        const base = opts.org ? orgPath(opts.org, '/audit') : '/api/v1/audit';
        const want = opts.jsonl ? Infinity : Number(opts.limit);
        let after: number | undefined;
        let printed = 0;
        while (printed < want) {
          const q = new URLSearchParams({
            ...(opts.action ? { action: opts.action } : {}),
            ...(opts.outcome ? { outcome: opts.outcome } : {}),
            ...(opts.actor ? { actor: opts.actor } : {}),
            ...(opts.since ? { since: opts.since } : {}),
            ...(opts.until ? { until: opts.until } : {}),
            ...(after !== undefined ? { after: String(after) } : {}),
            limit: String(Math.min(1000, want - printed)),
          });
          const res = await apiRequest<{
            entries: Array<{
              seq: number;
              at: string;
              actor: string;
              action: string;
              target: string;
              outcome: string;
              reason: string;
              detail: Record<string, unknown>;
            }>;
            next: number | null;
          }>(client, 'GET', `${base}?${q}`);
          for (const e of res.entries) {
            ctx.out(
              opts.jsonl
                ? JSON.stringify(e)
                : `#${e.seq}  ${e.at}  ${e.outcome.padEnd(5)}  ${e.action}  ${e.actor}  ${e.target}${e.reason ? `  (${e.reason})` : ''}${e.detail.ip ? `  from ${String(e.detail.ip)}${e.detail.country ? ` ${String(e.detail.country)}` : ''}` : ''}`,
            );
          }
          printed += res.entries.length;
          if (res.next === null || res.entries.length === 0) break;
          after = res.next;
        }
      },
    );
  audit
    .command('verify')
    .description(
      're-check the hash chain of the whole audit log (server admin); --anchor checks it still passes through a head you recorded',
    )
    .addOption(serverOption())
    .option('--anchor <seq:hash>', "a head recorded earlier (an 'audit checkpoint' log line, or this command's output)")
    .action(async (opts: { server?: string; anchor?: string }) => {
      let q = '';
      if (opts.anchor) {
        const m = /^(\d+):([0-9a-f]{64})$/.exec(opts.anchor.trim());
        if (!m)
          throw new CliError(
            `--anchor must be SEQ:HASH (e.g. 1234:${'0'.repeat(8)}…), got ${JSON.stringify(opts.anchor)}`,
          );
        q = `?seq=${m[1]}&hash=${m[2]}`;
      }
      const res = await apiRequest<{
        ok: boolean;
        entries: number;
        headHash: string;
        break?: { seq: number; problem: string };
      }>(clientOptions(opts), 'GET', `/api/v1/audit/verify${q}`);
      if (!res.ok)
        throw new CliError(
          `audit log chain broken at entry ${res.break!.seq}: ${res.break!.problem} (${res.entries} entries before it verified)`,
        );
      ctx.out(`audit log intact: ${res.entries} entries, head ${res.entries}:${res.headHash}`);
    });
  audit
    .command('reads')
    .description('who fetched which store paths, per day (narinfo hits, NAR downloads, bytes)')
    .addOption(serverOption())
    .requiredOption('--org <org>', 'org')
    .option('--since <date>', 'from this day (YYYY-MM-DD)')
    .option('--actor <actor>', 'only this principal (as shown in the log, e.g. acme:ci)')
    .option('--json', 'print JSON')
    .action(async (opts: { server?: string; org: string; since?: string; actor?: string; json?: boolean }) => {
      const q = new URLSearchParams({
        ...(opts.since ? { since: opts.since } : {}),
        ...(opts.actor ? { actor: opts.actor } : {}),
      });
      const res = await apiRequest<{
        reads: Array<{
          day: string;
          actor: string;
          storePath: string;
          narinfoHits: number;
          narDownloads: number;
          bytes: number;
        }>;
      }>(clientOptions(opts), 'GET', orgPath(opts.org, `/reads?${q}`));
      if (opts.json) return ctx.out(JSON.stringify(res.reads));
      for (const r of res.reads)
        ctx.out(
          `${r.day}  ${r.actor}  ${r.storePath}  ${r.narinfoHits} narinfo, ${r.narDownloads} NAR, ${r.bytes} bytes`,
        );
    });
}

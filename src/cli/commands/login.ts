/** `floe login [github-action|gitlab-pipeline|aws|oidc]`, `floe logout` and `floe status`. */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { CliError, FloeApi, clientOptions, readCliConfig } from '../client.js';
import { exchangeIdentity, logout, saveLogin, type LoginOutputOptions } from '../login.js';
import { obtainLogin, refreshForever, type RenewableMethod } from '../refresh.js';
import { browserLogin, deviceLogin } from '../oidc-login.js';
import type { CommandContext } from './context.js';
import { CLI_DURATION, parseDurationMs } from '../../units.js';

type LoginOpts = {
  server?: string;
  org?: string;
  ttl?: string;
  netrc?: string;
  nixConf?: string | false;
  system?: boolean;
  print?: boolean;
  json?: boolean;
  fh?: boolean;
};

const LOGIN_CHOICES = [
  'floe login github-action          in a GitHub Actions job (permissions: id-token: write)',
  'floe login gitlab-pipeline        in a GitLab CI job (id_tokens with aud = the server)',
  'floe login aws                    with the AWS credentials of this machine',
  'floe login oidc                   a person, through the identity provider the server offers',
  'floe login --token -              a Floe token from stdin (or --token-file F, or $FLOE_TOKEN)',
];

const outputOf = (o: LoginOpts): LoginOutputOptions => ({
  ...(o.netrc ? { netrc: o.netrc } : {}),
  ...(o.nixConf !== undefined ? { nixConf: o.nixConf } : {}),
  ...(o.system ? { system: true } : {}),
  ...(o.print ? { print: true } : {}),
  ...(o.json ? { json: true } : {}),
  ...(o.fh ? { fh: true } : {}),
});
const exchangeOpts = (o: LoginOpts) => ({ ...(o.org ? { org: o.org } : {}), ...(o.ttl ? { ttl: o.ttl } : {}) });

export function registerLoginCommands(program: Command, ctx: CommandContext): void {
  const loginOutput = (cmd: Command) =>
    cmd
      .addOption(ctx.serverOption())
      .option('--org <org>', 'org to log in to, when the identity is trusted by several')
      .option('--ttl <duration>', 'shorter token lifetime than the org allows, e.g. 30m')
      .option(
        '--netrc <file>',
        'netrc file to update (default: the nix.conf netrc-file, else $XDG_CONFIG_HOME/nix/netrc)',
      )
      .option('--nix-conf <file>', 'nix.conf to update (default: $XDG_CONFIG_HOME/nix/nix.conf)')
      .option('--no-nix-conf', 'do not touch nix.conf')
      .option('--system', 'multi-user Nix (as root): write the netrc and nix.conf include the nix-daemon reads')
      .option('--print', 'print the netrc and nix.conf lines instead of writing them')
      .option('--fh', "also write the token to fh's auth file ($XDG_CONFIG_HOME/flakehub/auth), so fh works here")
      .option('--json', 'print a JSON summary');

  const login = loginOutput(
    program
      .command('login')
      .description(
        'log in: exchange a CI or IdP identity for a Floe token, or save a token (--token - / --token-file / $FLOE_TOKEN)',
      ),
  )
    .option(
      '--token <token>',
      'save this Floe token: "-" reads it from stdin (a token on the command line shows in `ps`)',
    )
    .option('--token-file <file>', 'save the Floe token in this file')
    .action(async (opts: LoginOpts & { token?: string; tokenFile?: string }) => {
      let token: string | undefined;
      if (opts.token === '-') token = (await ctx.readStdin()).trim();
      else if (opts.token) token = opts.token;
      else if (opts.tokenFile) token = (await readFile(opts.tokenFile, 'utf8')).trim();
      else if (process.env.FLOE_TOKEN?.trim()) token = process.env.FLOE_TOKEN.trim();
      if (!token) {
        ctx.err(`floe: say how to log in:\n${LOGIN_CHOICES.map((c) => `  ${c}`).join('\n')}`);
        throw new CliError('no login method given');
      }
      const client = clientOptions(opts);
      const who = await new FloeApi({ ...client, token }).whoami();
      if (who.kind === 'anonymous') throw new CliError('the server did not accept that token');
      const result = {
        token,
        ...(who.org ? { org: who.org } : {}),
        ...(who.subject ? { subject: who.subject } : {}),
        ...(who.scopes ? { scopes: who.scopes } : {}),
        expiresAt: who.expiresAt ?? null,
      };
      await saveLogin(ctx, client, result, outputOf(opts));
    });

  /**
   * A login this machine can repeat on its own: remembered for the watchers, and with `--refresh`
   * a detached process logs in again before each token expires (the CI runner ends it with the job).
   */
  const renewable = (cmd: Command, method: RenewableMethod) =>
    loginOutput(cmd)
      .option(
        '--refresh',
        'keep the login fresh for long jobs: a background process logs in again before the token expires',
      )
      .option('--refresh-before <duration>', 'with --refresh: how long before expiry to log in again', '10m')
      .addOption(new Option('--refresh-loop').hideHelp())
      .action(async (opts: LoginOpts & { refresh?: boolean; refreshBefore: string; refreshLoop?: boolean }) => {
        const client = clientOptions(opts);
        const how = { method, ...exchangeOpts(opts) };
        const before = parseDurationMs(opts.refreshBefore, '--refresh-before', CLI_DURATION);
        if (opts.refreshLoop) {
          // The login just saved is in the netrc: its token says when to renew.
          const output = { ...outputOf(opts), json: false, print: false };
          return refreshForever(client, { ...how, output }, { token: client.token ?? '' }, before);
        }
        const first = await obtainLogin(client, method, exchangeOpts(opts));
        await saveLogin(ctx, client, first, outputOf(opts), opts.print ? undefined : how);
        if (!opts.refresh) return;
        const args = process.argv.slice(2).filter((a) => a !== '--refresh' && a !== '--json' && a !== '--print');
        const child = spawn(process.execPath, [process.argv[1]!, ...args, '--refresh-loop'], {
          detached: true,
          stdio: 'ignore',
          env: process.env,
        });
        child.unref();
        ctx.err(`floe: refreshing the login in the background (pid ${child.pid})`);
      });

  renewable(
    login.command('github-action').description('in a GitHub Actions job (permissions: id-token: write)'),
    'github-action',
  );

  loginOutput(
    login
      .command('gitlab-pipeline')
      .description('in a GitLab CI job with an id_token whose aud is this server')
      .addHelpText(
        'after',
        '\nNo --refresh: GitLab issues a job its id_tokens once, at the start, and Floe exchanges each once\n' +
          '(a replayed login is refused), so nothing can log in again later in the job. Make the token last\n' +
          "the job instead: the org's trust sets its lifetime (`floe trust add ... --ttl 3h`, at most 12h,\n" +
          'default 1h) and --ttl here can only shorten it.',
      ),
  )
    .option('--token-var <name>', 'CI/CD variable holding the id_token', 'FLOE_ID_TOKEN')
    .action(async (opts: LoginOpts & { tokenVar: string }) => {
      const idToken = process.env[opts.tokenVar];
      if (!idToken)
        throw new CliError(
          `$${opts.tokenVar} is not set: declare it under id_tokens in .gitlab-ci.yml with aud set to this server (see \`floe login --help\`)`,
        );
      const client = clientOptions(opts);
      await saveLogin(ctx, client, await exchangeIdentity(client, idToken, exchangeOpts(opts)), outputOf(opts));
    });

  renewable(
    login
      .command('aws')
      .description('with the AWS credentials of this machine (role, profile, env): presigned sts:GetCallerIdentity'),
    'aws',
  );

  loginOutput(
    login
      .command('oidc')
      .description(
        'a person, through an OIDC provider (Entra ID, ...): browser (PKCE) or --device; or exchange --id-token-file',
      )
      .addHelpText(
        'after',
        '\nNo --refresh: Floe keeps no refresh token from the provider (a stolen laptop would keep a key\n' +
          'that outlives the session), so the login ends with its token. Log in again when it expires\n' +
          "(`floe status` says when); the trust's --ttl sets how long one lasts. For an unattended machine use\n" +
          "its own identity (`floe login aws`, a CI login) or an org admin's `floe token create --ttl ...`\n" +
          'saved with `floe login --token-file F`.',
      ),
  )
    .option('--issuer <url>', 'identity provider (default: the one the server offers)')
    .option('--client-id <id>', "the Floe CLI's client id at the provider (default: from the server)")
    .option('--device', 'device-code flow, for machines without a browser')
    .option('--no-browser', 'print the login URL instead of opening a browser')
    .option('--id-token-file <file>', 'exchange this token instead ("-" for stdin)')
    .action(
      async (
        opts: LoginOpts & {
          idTokenFile?: string;
          issuer?: string;
          clientId?: string;
          device?: boolean;
          browser: boolean;
        },
      ) => {
        const client = clientOptions(opts);
        let idToken: string;
        if (opts.idTokenFile) {
          idToken = (
            opts.idTokenFile === '-' ? await ctx.readStdin() : await readFile(opts.idTokenFile, 'utf8')
          ).trim();
        } else {
          let issuer = opts.issuer;
          let clientId = opts.clientId;
          if (!issuer || !clientId) {
            const info = await new FloeApi(client).authInfo();
            const offered = info.logins.filter(
              (l) => (!issuer || l.issuer === issuer) && (!opts.org || l.org === opts.org),
            );
            if (offered.length === 0)
              throw new CliError('the server offers no interactive login; pass --issuer and --client-id');
            if (new Set(offered.map((l) => `${l.issuer} ${l.clientId}`)).size > 1) {
              throw new CliError(
                `several identity providers are offered (${offered.map((l) => l.issuer).join(', ')}): pass --issuer or --org`,
              );
            }
            issuer ??= offered[0]!.issuer;
            clientId ??= offered[0]!.clientId;
          }
          idToken = opts.device
            ? await deviceLogin(issuer, clientId)
            : await browserLogin(issuer, clientId, { openBrowser: opts.browser });
        }
        await saveLogin(ctx, client, await exchangeIdentity(client, idToken, exchangeOpts(opts)), outputOf(opts));
      },
    );

  program
    .command('logout')
    .description(
      'undo `floe login`: remove its netrc entry and nix.conf lines, forget the server, revoke the token where allowed',
    )
    .addOption(ctx.serverOption())
    .option('--netrc <file>', 'netrc file login wrote')
    .option('--nix-conf <file>', 'nix.conf login wrote')
    .option('--system', 'undo a `floe login --system` (as root)')
    .action(async (opts: { server?: string; netrc?: string; nixConf?: string; system?: boolean }) => {
      await logout(ctx, clientOptions(opts), {
        ...(opts.netrc ? { netrc: opts.netrc } : {}),
        ...(opts.nixConf ? { nixConf: opts.nixConf } : {}),
        ...(opts.system ? { system: true } : {}),
      });
    });

  program
    .command('status')
    .description('who am I on this server: org, subject, scopes, token expiry, cache URL')
    .addOption(ctx.serverOption())
    .option('--json', 'print JSON')
    .action(async (opts: { server?: string; json?: boolean }) => {
      const client = clientOptions(opts);
      const api = new FloeApi(client);
      const who = await api.whoami();
      const cache = await api.cacheInfo(undefined, true);
      if (opts.json) return ctx.out(JSON.stringify({ ...who, server: client.server, substituter: cache.substituter }));
      if (who.kind === 'anonymous') ctx.out(`not logged in to ${client.server} (set FLOE_TOKEN or run \`floe login\`)`);
      else if (who.kind === 'server-admin') ctx.out(`server admin on ${client.server}`);
      else {
        const slices = who.slices ? ` (slices ${who.slices.join(', ')})` : '';
        ctx.out(
          `${who.subject} in org ${who.org} on ${client.server}\nscopes: ${(who.scopes ?? []).join(', ')}${slices}\nexpires: ${who.expiresAt ?? 'never'}`,
        );
      }
      const remembered = readCliConfig();
      if (remembered.org && who.kind !== 'token') ctx.out(`remembered org: ${remembered.org}`);
      ctx.out(`substituter: ${cache.substituter}`);
    });
}

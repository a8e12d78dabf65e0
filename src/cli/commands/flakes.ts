/** The registry side: `floe publish`, `apply`, `list`, `add`, `search`, `resolve`. */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Option, type Command } from 'commander';
import { apply } from '../apply.js';
import { CliError, FloeApi, clientOptions, parseFlakeRef, readCliConfig } from '../client.js';
import { FlakeEditError, addFlakeInput, chooseInputUrl } from '../flake-add.js';
import { localNixVersion } from '../nix-version.js';
import { publishFlake } from '../publish.js';
import type { CommandContext } from './context.js';
import { type Visibility, VISIBILITIES } from '../../wire/access.js';

type Verb = 'switch' | 'boot' | 'test' | 'dry-activate';

export function registerFlakeCommands(program: Command, ctx: CommandContext): void {
  const { out, err } = ctx;
  program
    .command('apply <target> <ref>')
    .description(
      'apply a published NixOS, nix-darwin or Home Manager configuration: fetch its closure from the cache, set the profile, activate',
    )
    .addOption(ctx.serverOption())
    .option('--profile <path>', 'profile to point at the configuration')
    .addOption(
      new Option('--verb <verb>', 'NixOS activation')
        .choices(['switch', 'boot', 'test', 'dry-activate'])
        .default('switch'),
    )
    .option('--netrc <file>', 'netrc for the cache (default: the one `floe login` wrote)')
    .option('--dry-run', 'show what would be done')
    .action(
      async (
        target: string,
        ref: string,
        opts: { server?: string; profile?: string; verb: Verb; netrc?: string; dryRun?: boolean },
      ) => {
        if (target !== 'nixos' && target !== 'nix-darwin' && target !== 'home-manager')
          throw new CliError('target must be nixos, nix-darwin or home-manager');
        await apply(clientOptions(opts), {
          target,
          ref,
          verb: opts.verb,
          dryRun: Boolean(opts.dryRun),
          ...(opts.profile ? { profile: opts.profile } : {}),
          ...(opts.netrc ? { netrc: opts.netrc } : {}),
          log: (line) => err(`floe apply: ${line}`),
        });
      },
    );

  program
    .command('publish')
    .description('publish a release of the flake in this git checkout (from CI), with its outputs pushed to the cache')
    .addOption(ctx.serverOption())
    .option('--dir <dir>', 'flake directory inside the checkout', '.')
    .option('--org <org>', 'org (default: owner of $GITHUB_REPOSITORY)')
    .option('--name <flake>', 'flake name (default: the repository name)')
    .option('--rolling', 'rolling release 0.<minor>.<commit count>+rev-<sha>')
    .option('--rolling-minor <n>', 'minor version of rolling releases', '1')
    .option('--tag <tag>', 'semver tag to publish (default: the CI tag)')
    .addOption(new Option('--visibility <v>', 'who can see it').choices(VISIBILITIES).default('private'))
    .option('--include-output <attr...>', 'build these outputs, push their closures and record their store paths')
    .option('--label <label...>', 'labels for search')
    .option('--dry-run', 'show what would be published')
    .option('--json', 'print JSON')
    .action(
      async (opts: {
        server?: string;
        dir: string;
        org?: string;
        name?: string;
        rolling?: boolean;
        rollingMinor: string;
        tag?: string;
        visibility: Visibility;
        includeOutput?: string[];
        label?: string[];
        dryRun?: boolean;
        json?: boolean;
      }) => {
        const result = await publishFlake(clientOptions(opts), {
          dir: opts.dir,
          ...(opts.org ? { org: opts.org } : {}),
          ...(opts.name ? { name: opts.name } : {}),
          rolling: Boolean(opts.rolling),
          rollingMinor: Number(opts.rollingMinor),
          ...(opts.tag ? { tag: opts.tag } : {}),
          visibility: opts.visibility,
          includeOutputs: opts.includeOutput ?? [],
          labels: opts.label ?? [],
          dryRun: Boolean(opts.dryRun),
          log: (line) => err(`floe publish: ${line}`),
        });
        out(opts.json ? JSON.stringify(result) : result.url);
      },
    );

  program
    .command('list <what> [scope]')
    .description(
      'list orgs, the flakes of an org (`list flakes acme` or `list flakes --org acme`) or the releases of a flake (`list releases acme/tools`)',
    )
    .addOption(ctx.serverOption())
    .option('--org <org>', 'with `flakes`: the org')
    .option('--json', 'print JSON')
    .action(
      async (what: string, scope: string | undefined, opts: { server?: string; org?: string; json?: boolean }) => {
        const api = new FloeApi(clientOptions(opts));
        if (what === 'orgs') {
          const res = await api.orgs();
          if (opts.json) return out(JSON.stringify(res.orgs));
          for (const o of res.orgs) out(`${o.name}  ${o.flakes} flake(s)`);
        } else if (what === 'flakes') {
          const org = scope ?? opts.org ?? readCliConfig().org;
          if (!org) throw new CliError('which org? `floe list flakes --org <org>`');
          const res = await api.flakes(org);
          if (opts.json) return out(JSON.stringify(res.flakes));
          for (const f of res.flakes)
            out(`${f.org}/${f.flake}  ${f.visibility}${f.description ? `  ${f.description}` : ''}`);
        } else if (what === 'releases') {
          const m = /^([^/]+)\/([^/]+)$/.exec(scope ?? '');
          if (!m) throw new CliError('which flake? `floe list releases <org>/<flake>`');
          const res = await api.releases(m[1]!, m[2]!);
          if (opts.json) return out(JSON.stringify(res.releases));
          for (const r of res.releases) out(`${r.version}  ${r.publishedAt}${r.yanked ? '  (yanked)' : ''}`);
        } else {
          throw new CliError('list what? orgs, flakes <org> or releases <org>/<flake>');
        }
      },
    );

  program
    .command('add <ref>')
    .description(
      'add a Floe flake as an input of ./flake.nix: `floe add acme/tools` (newest 0.x/1.x…) or `floe add acme/tools/0.1`',
    )
    .addOption(ctx.serverOption())
    .option('--dir <dir>', 'directory of the flake.nix to edit', '.')
    .option('--input-name <name>', 'name of the input (default: the flake name)')
    .option('--pin', 'write the exact release URL (default when the local Nix is older than 2.17)')
    .option('--no-pin', 'write the requirement URL even for a Nix that ignores `Link` (its lock will drift)')
    .action(async (ref: string, opts: { server?: string; dir: string; inputName?: string; pin?: boolean }) => {
      const m = /^([^/]+)\/([^/]+)(?:\/(.+))?$/.exec(ref);
      if (!m) throw new CliError('expected <org>/<flake>[/<requirement>]');
      const [, orgName, flake, req] = m;
      const client = clientOptions(opts);
      // Without a requirement, pin to the newest release's major line (Cargo's caret), as fh does.
      const latest = await new FloeApi(client).resolve(orgName!, flake!, req ?? '*');
      const [major, minor] = latest.version.split('.');
      const requirement = req ?? (major === '0' ? `0.${minor}` : major!);
      const choice = chooseInputUrl({
        ref: `${orgName}/${flake}/${requirement}`,
        requirementUrl: `${client.server}/f/${orgName}/${flake}/${requirement}.tar.gz`,
        pinnedUrl: latest.url,
        version: latest.version,
        pin: opts.pin,
        nix: opts.pin === true ? undefined : await localNixVersion(),
      });
      const file = path.join(path.resolve(opts.dir), 'flake.nix');
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch {
        throw new CliError(`no flake.nix in ${path.resolve(opts.dir)}`);
      }
      try {
        await writeFile(
          file,
          addFlakeInput(text, opts.inputName ?? flake!.replace(/[^A-Za-z0-9_'-]/g, '-'), choice.url),
        );
      } catch (e) {
        if (e instanceof FlakeEditError) throw new CliError(`${file}: ${e.message}`);
        throw e;
      }
      err(
        `floe: added ${choice.url} to ${file} (newest match today: ${latest.version}); add it to the outputs arguments and run \`nix flake lock\``,
      );
      for (const note of choice.notes) err(`floe: ${note}`);
    });

  program
    .command('search <query...>')
    .description('search flakes by name, description and labels')
    .addOption(ctx.serverOption())
    .option('--json', 'print JSON')
    .action(async (query: string[], opts: { server?: string; json?: boolean }) => {
      const res = await new FloeApi(clientOptions(opts)).search(query.join(' '));
      if (opts.json) return out(JSON.stringify(res.results));
      if (res.results.length === 0) return err('no flakes found');
      for (const r of res.results) out(`${r.org}/${r.flake}${r.description ? `  ${r.description}` : ''}`);
    });

  program
    .command('resolve <ref>')
    .description("resolve <org>/<flake>/<requirement>[#<output attribute>] to a release, or to the output's store path")
    .addOption(ctx.serverOption())
    .option('--json', 'print JSON')
    .action(async (ref: string, opts: { server?: string; json?: boolean }) => {
      const { org, flake, requirement: req = '*', attribute: attr } = parseFlakeRef(ref);
      const res = await new FloeApi(clientOptions(opts)).resolve(org, flake, req, attr);
      if (opts.json) return out(JSON.stringify(res));
      out(attr ? (res.storePath ?? '') : `${org}/${flake} ${res.version}  ${res.url}`);
    });
}

/**
 * The `floe` command line: builds the command tree and runs one command line. Each command group
 * lives in commands/<group>.ts (or its own module under cli/) and registers itself with one line
 * below. `main()` parses nothing on import and never exits the process: it returns the exit
 * status, so tests can run it in-process and bin/floe.js decides how to exit.
 */
import { Command, CommanderError } from 'commander';
import { FloeError } from '../errors.js';
import { CliError, CliExit } from './client.js';
import { registerCacheCommands } from './commands/cache.js';
import { registerCompletionCommands } from './commands/completion.js';
import { commandContext, processIo, type CliIo } from './commands/context.js';
import { registerFlakeCommands } from './commands/flakes.js';
import { registerLoginCommands } from './commands/login.js';
import { registerOrgCommands } from './commands/orgs.js';
import { registerPinCommands } from './commands/pins.js';
import { registerPushCommand } from './commands/push.js';
import { registerServeCommands } from './commands/serve.js';
import { registerServerAdminCommands } from './commands/server-admin.js';
import { registerTokenCommands } from './commands/tokens.js';
import { registerTrustCommands } from './commands/trust.js';
import { registerPolicyCommands } from './policy.js';
import { registerAuditCommands } from './audit.js';
import { registerSourceCommands } from './sources.js';
import { registerWatchCommands } from './watch.js';
import { registerBackupCommands } from './backup.js';
import { registerVersionOption } from './version.js';

export function buildProgram(io: CliIo): Command {
  const ctx = commandContext(io);
  const program = new Command();
  program
    .name('floe')
    .description('Floe: self-hostable flake registry and identity-aware Nix binary cache')
    .showHelpAfterError();
  // Options belong to the command they follow: `floe login github-action --json` is the subcommand's --json.
  program.enablePositionalOptions();
  registerVersionOption(program, (text) => void io.stdout.write(text));
  // Set before any command is added: subcommands inherit both.
  program.exitOverride();
  program.configureOutput({ writeOut: (s) => void io.stdout.write(s), writeErr: (s) => void io.stderr.write(s) });

  registerServeCommands(program, ctx);
  registerLoginCommands(program, ctx);
  registerPushCommand(program, ctx);
  registerFlakeCommands(program, ctx);
  const { slice } = registerOrgCommands(program, ctx);
  const { keys } = registerTokenCommands(program, ctx);
  const { trust } = registerTrustCommands(program, ctx);
  registerServerAdminCommands(program, ctx);
  registerPinCommands(program, ctx);
  registerCacheCommands(program, ctx);
  registerPolicyCommands(program, ctx);
  registerAuditCommands(program, ctx);
  registerSourceCommands(program, ctx, { keys, trust, slice });
  registerWatchCommands(program, ctx.serverOption);
  registerBackupCommands(program);
  registerCompletionCommands(program, ctx);
  return program;
}

/** Runs one command line (`argv` without node and the script) and returns its exit status. */
export async function main(argv: string[], io: CliIo = processIo()): Promise<number> {
  try {
    await buildProgram(io).parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CliExit) return err.code;
    // Commander has printed its message (usage errors, --help) already.
    if (err instanceof CommanderError) return err.exitCode;
    if (err instanceof CliError || err instanceof FloeError) {
      io.stderr.write(`floe: ${err.message}\n`);
      return 1;
    }
    io.stderr.write(`floe: unexpected error: ${(err as Error).stack ?? String(err)}\n`);
    return 1;
  }
}

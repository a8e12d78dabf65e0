/**
 * What every command group gets: where to print, the shared `--server` option, and the argument
 * conventions (one flag style: `--org` everywhere, the older positional org still accepted).
 * Commands print through `io` and end by returning or throwing (CliError, CliExit), never by
 * exiting the process, so `main()` can run them in-process.
 */
import { Option } from 'commander';
import { CliError, readCliConfig } from '../client.js';

export interface OutStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface CliIo {
  stdout: OutStream;
  stderr: OutStream;
  stdin: AsyncIterable<Buffer | string>;
}

export interface CommandContext {
  io: CliIo;
  /** One line on stdout (what scripts read). */
  out(line: string): void;
  /** One line on stderr (what people read). */
  err(line: string): void;
  serverOption(): Option;
  readStdin(): Promise<string>;
}

export function processIo(): CliIo {
  return { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin };
}

export function commandContext(io: CliIo): CommandContext {
  return {
    io,
    out: (line) => void io.stdout.write(`${line}\n`),
    err: (line) => void io.stderr.write(`${line}\n`),
    serverOption: () =>
      new Option('--server <url>', 'Floe server URL (default: $FLOE_SERVER, else the one `floe login` saved)'),
    readStdin: async () => {
      const chunks: Buffer[] = [];
      for await (const c of io.stdin) chunks.push(typeof c === 'string' ? Buffer.from(c) : c);
      return Buffer.concat(chunks).toString('utf8');
    },
  };
}

/** The `--org` option of commands that also accept the org as their first argument. */
export const orgOption = () =>
  new Option('--org <org>', 'the org (the older spelling, the org as first argument, works too)');

/**
 * Resolves the org and the remaining arguments of a command declared as `[org] [a] [b]...`:
 * with `--org` the arguments are the rest (or, in the older spelling, still start with the org);
 * without it the first argument is the org. `names` are the rest's names, for the error message.
 */
export function orgAndArgs(
  flag: string | undefined,
  given: Array<string | undefined>,
  names: string[],
): [string, ...string[]] {
  const args = given.filter((a): a is string => a !== undefined);
  const usage = `expected ${['--org <org>', ...names.map((n) => `<${n}>`)].join(' ')} (or <org> first)`;
  if (flag !== undefined) {
    if (args.length === names.length + 1 && args[0] === flag) args.shift();
    if (args.length !== names.length) throw new CliError(usage);
    return [flag, ...args];
  }
  // The org `floe login` remembered stands in for a missing one.
  const remembered = readCliConfig().org;
  if (args.length === names.length && remembered) return [remembered, ...args];
  if (args.length !== names.length + 1) throw new CliError(usage);
  return args as [string, ...string[]];
}

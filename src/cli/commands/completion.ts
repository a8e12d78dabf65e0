/**
 * `floe completion bash|zsh|fish`: a script that asks the binary itself (`floe __complete <words>`)
 * for the subcommands and options at the cursor, so completions never drift from the commands.
 */
import type { Command } from 'commander';
import { CliError } from '../client.js';
import type { CommandContext } from './context.js';

/** Candidates for the word being typed, after `words` (the command line without `floe`). */
export function completions(program: Command, words: string[]): string[] {
  let cmd = program;
  const typed = words.slice(0, -1);
  const current = words[words.length - 1] ?? '';
  for (const w of typed) {
    const sub = cmd.commands.find((c) => c.name() === w || c.aliases().includes(w));
    if (sub) cmd = sub;
  }
  const names = current.startsWith('-')
    ? cmd.options.filter((o) => !o.hidden).flatMap((o) => [o.long, o.short].filter((f): f is string => Boolean(f)))
    : cmd.commands.filter((c) => !(c as unknown as { _hidden?: boolean })._hidden).map((c) => c.name());
  return names.filter((n) => n.startsWith(current)).sort();
}

const SCRIPTS: Record<string, string> = {
  bash: `# floe completion for bash: eval "$(floe completion bash)"
_floe() {
  local IFS=$'\\n'
  COMPREPLY=($(floe __complete "\${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
}
complete -o default -F _floe floe
`,
  zsh: `#compdef floe
# floe completion for zsh: floe completion zsh > "\${fpath[1]}/_floe"
_floe() {
  local -a candidates
  candidates=("\${(@f)$(floe __complete "\${(@)words[2,CURRENT]}" 2>/dev/null)}")
  compadd -a candidates
}
compdef _floe floe
`,
  fish: `# floe completion for fish: floe completion fish > ~/.config/fish/completions/floe.fish
complete -c floe -f -a '(floe __complete (commandline -opc)[2..-1] (commandline -ct) 2>/dev/null)'
`,
};

export function registerCompletionCommands(program: Command, ctx: CommandContext): void {
  program
    .command('completion <shell>')
    .description('print a shell completion script: bash, zsh or fish')
    .action((shell: string) => {
      const script = SCRIPTS[shell];
      if (!script) throw new CliError('completion for which shell? bash, zsh or fish');
      ctx.io.stdout.write(script);
    });
  program
    .command('__complete [words...]', { hidden: true })
    .allowUnknownOption()
    .helpOption(false)
    .action((words: string[]) => {
      for (const c of completions(program, words.length ? words : [''])) ctx.out(c);
    });
}

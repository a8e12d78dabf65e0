/** PURE: how a CLI command ends early: a message naming the problem, or an exit status. */

/** A message for the user (printed as `floe: <message>`, exit 1). */
export class CliError extends Error {}

/** Ends a command with this exit status (after it printed what it had to say). */
export class CliExit extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

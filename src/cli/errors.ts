/** PURE: how a CLI command ends early: a message naming the problem, or an exit status. */

/** A message for the user (printed as `floe: <message>`, exit 1). */
export class CliError extends Error {
  /** The HTTP status when the server refused the request (a 401 lets a watcher renew its login). */
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

/** Ends a command with this exit status (after it printed what it had to say). */
export class CliExit extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

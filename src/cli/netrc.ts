/**
 * Editing netrc and nix.conf for `floe login`. Pure text transformations (no I/O here): replace
 * only Floe's own entry for one host, keep everything else.
 */
export class NetrcError extends Error {}

/** Returns `text` with the entry for `host` replaced by (or extended with) one carrying `password`. */
export function upsertNetrcEntry(text: string, host: string, password: string): string {
  if (/\s/.test(password) || /\s/.test(host)) throw new NetrcError('host and token must not contain white space');
  if (/(^|\s)macdef(\s|$)/.test(text))
    throw new NetrcError('the netrc file uses macdef, which floe does not edit; add the entry by hand or use --print');
  const tokens = text.split(/\s+/).filter(Boolean);
  const entries: string[][] = [];
  for (const t of tokens) {
    if (t === 'machine' || t === 'default' || entries.length === 0) entries.push([]);
    entries[entries.length - 1]!.push(t);
  }
  const kept = entries.filter((e) => !(e[0] === 'machine' && e[1] === host));
  const ours = ['machine', host, 'login', 'floe', 'password', password];
  // `default` must stay last to keep applying only to hosts without an entry.
  const defaults = kept.filter((e) => e[0] === 'default');
  const others = kept.filter((e) => e[0] !== 'default');
  return [...others, ours, ...defaults].map((e) => e.join(' ')).join('\n') + '\n';
}

/** Removes Floe's entry for `host`. */
export function removeNetrcEntry(text: string, host: string): string {
  const withPlaceholder = upsertNetrcEntry(text, host, 'x');
  return withPlaceholder
    .split('\n')
    .filter((l) => !l.startsWith(`machine ${host} `))
    .join('\n');
}

const begin = (host: string) => `# >>> floe ${host} (managed by floe login) >>>`;
const end = (host: string) => `# <<< floe ${host} <<<`;

/** Replaces (or appends) the managed block for `host` in a nix.conf. */
export function upsertNixConfBlock(text: string, host: string, lines: string[]): string {
  const block = [begin(host), ...lines, end(host)].join('\n');
  const start = text.indexOf(begin(host));
  const stop = text.indexOf(end(host));
  if (start >= 0 && stop > start) {
    return text.slice(0, start) + block + text.slice(stop + end(host).length);
  }
  const sep = text === '' || text.endsWith('\n') ? '' : '\n';
  return `${text}${sep}${block}\n`;
}

export function nixConfLines(opts: { substituter: string; publicKey: string; netrcFile: string }): string[] {
  return [
    `extra-substituters = ${opts.substituter}`,
    `extra-trusted-public-keys = ${opts.publicKey}`,
    `netrc-file = ${opts.netrcFile}`,
  ];
}

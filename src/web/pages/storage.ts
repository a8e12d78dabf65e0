/** The org's storage (admins): usage per slice, the quota, the retention window and pins. */
import { html } from 'hono/html';
import type { OrgStorage } from '../../cache/accounting.js';
import type { Pin } from '../../cache/retention.js';
import { type Html, type PageContext, bytes, count, csrfField, notice, when } from '../layout.js';
import { meter } from '../charts.js';

export interface PinForm {
  name: string;
  storePath: string;
  ttl: string;
  error?: { field: 'name' | 'storePath' | 'ttl'; message: string };
}

export interface StorageForms {
  pin?: PinForm;
  retention?: { mode: 'forever' | 'window'; value: string; error?: string };
  quota?: { value: string; error?: string };
  /** What the last change did (after a redirect). */
  done?: string;
}

/** Seconds as the shortest exact duration the forms accept (`30d`, `12h`, `90m`, `45s`). */
export function durationText(seconds: number): string {
  for (const [unit, n] of [
    ['d', 86400],
    ['h', 3600],
    ['m', 60],
  ] as const)
    if (seconds > 0 && seconds % n === 0) return `${seconds / n}${unit}`;
  return `${seconds}s`;
}

/** Seconds for people: "30 days", "12 hours". */
export function durationWords(seconds: number): string {
  const plural = (n: number, w: string) => `${count(n)} ${w}${n === 1 ? '' : 's'}`;
  if (seconds >= 86400 && seconds % 86400 === 0) return plural(seconds / 86400, 'day');
  if (seconds >= 3600 && seconds % 3600 === 0) return plural(seconds / 3600, 'hour');
  if (seconds >= 60 && seconds % 60 === 0) return plural(seconds / 60, 'minute');
  return plural(seconds, 'second');
}

/** Sizes as the quota form accepts them (`200G`), exact. */
export function sizeText(n: number): string {
  for (const [unit, m] of [
    ['T', 2 ** 40],
    ['G', 2 ** 30],
    ['M', 2 ** 20],
    ['K', 2 ** 10],
  ] as const)
    if (n > 0 && n % m === 0) return `${n / m}${unit}`;
  return String(n);
}

const DONE: Record<string, string> = {
  'pin-added': 'Pin added: that path and its closure stay, whatever the retention window.',
  'pin-removed': 'Pin removed. The path goes at the next GC unless something else keeps it.',
  retention: 'Retention window saved. It applies from the next GC run.',
  quota: 'Quota saved.',
};

const fieldError = (id: string, message: string | undefined) =>
  message ? html`<p class="error-text" id="${id}" role="alert">${message}</p>` : '';
const invalid = (bad: boolean) => (bad ? html` aria-invalid="true"` : '');

export function storageTab(
  ctx: PageContext,
  org: string,
  s: OrgStorage,
  pins: Pin[],
  opts: { canSetQuota: boolean; forms?: StorageForms },
): Html {
  const f = opts.forms ?? {};
  const quotaShare = s.quotaBytes ? s.storedBytes / s.quotaBytes : 0;
  const rf = f.retention ?? {
    mode: s.retentionSeconds === null ? 'forever' : 'window',
    value: s.retentionSeconds === null ? '30d' : durationText(s.retentionSeconds),
  };
  const qf = f.quota ?? { value: s.quotaBytes === null ? '' : sizeText(s.quotaBytes) };
  const pf = f.pin ?? { name: '', storePath: '', ttl: '' };
  const pe = pf.error;
  const now = new Date().toISOString();
  return html`
    <p class="lead">What ${org} stores, how long pushed paths are kept, and the paths kept no matter what.</p>
    ${f.done && DONE[f.done] ? notice('ok', DONE[f.done]!) : ''}
    <div class="stats">
      <div class="card stat"><div class="value" data-testid="stat-stored">${bytes(s.storedBytes)}</div><div class="what">stored (deduplicated, compressed)</div></div>
      <div class="card stat"><div class="value" data-testid="stat-logical">${bytes(s.logicalBytes)}</div><div class="what">logical (NAR sizes clients download)</div></div>
      <div class="card stat"><div class="value">${count(s.paths)}</div><div class="what">store paths in ${count(s.slices.length)} ${s.slices.length === 1 ? 'slice' : 'slices'}</div></div>
      <div class="card stat" data-testid="stat-quota"><div class="value">${s.quotaBytes === null ? 'No quota' : `${(quotaShare * 100).toFixed(quotaShare < 0.1 ? 1 : 0)}%`}</div>
        <div class="what">${s.quotaBytes === null ? 'storage is not limited' : `of the ${bytes(s.quotaBytes)} quota used`}</div>
        ${s.quotaBytes === null ? '' : meter(quotaShare, `${(quotaShare * 100).toFixed(1)} percent of the quota used`)}</div>
    </div>
    <h2>Slices</h2>
    <div class="card table-card"><table class="list" data-testid="slice-storage">
      <thead><tr><th scope="col">Slice</th><th scope="col" class="num">Paths</th><th scope="col" class="num">Logical</th><th scope="col" class="num">Stored</th><th scope="col">Share of stored bytes</th></tr></thead>
      <tbody>${s.slices.map(
        (
          x,
        ) => html`<tr><td><code>${x.name}</code></td><td class="num">${count(x.paths)}</td><td class="num">${bytes(x.logicalBytes)}</td><td class="num">${bytes(x.storedBytes)}</td>
          <td>${meter(s.storedBytes ? Math.min(1, x.storedBytes / s.storedBytes) : 0, `${x.name}: share of stored bytes`)}</td></tr>`,
      )}</tbody></table></div>
    <p class="small muted">A NAR used by several slices counts in each slice's stored bytes but once for the org, so slices can add up to more than the org.</p>
    <div class="two">
      <section class="card" aria-labelledby="retention-title">
        <h2 id="retention-title">Retention</h2>
        <p class="small muted">Pushed paths younger than the window are kept by garbage collection; older ones stay only if a release output or a pin needs them. Currently: <strong data-testid="retention-current">${s.retentionSeconds === null ? 'every push is kept' : `pushes are kept for ${durationWords(s.retentionSeconds)}`}</strong>.</p>
        <form method="post" action="/manage/${org}/storage/retention">
          ${csrfField(ctx)}
          <fieldset><legend>Keep pushed paths</legend><div class="checks">
            <label><input type="radio" name="mode" value="forever"${rf.mode === 'forever' ? html` checked` : ''}> forever</label>
            <label><input type="radio" name="mode" value="window"${rf.mode === 'window' ? html` checked` : ''}> for a window</label>
          </div></fieldset>
          <div class="field"><label for="retention">Retention window</label>
            <input id="retention" name="retention" value="${rf.value}" maxlength="20" placeholder="30d" aria-describedby="${rf.error ? 'retention-error retention-hint' : 'retention-hint'}"${invalid(Boolean(rf.error))}>
            ${fieldError('retention-error', rf.error)}
            <div class="hint" id="retention-hint">A duration like <code>30d</code>, <code>2w</code> or <code>12h</code>; used when "for a window" is chosen.</div>
          </div>
          <button class="btn" type="submit">Save retention</button>
        </form>
      </section>
      <section class="card" aria-labelledby="quota-title">
        <h2 id="quota-title">Quota</h2>
        ${
          opts.canSetQuota
            ? html`<p class="small muted">Most deduplicated stored bytes ${org} may use. Pushes that would go past it are refused with 413.</p>
          <form method="post" action="/manage/${org}/storage/quota">
            ${csrfField(ctx)}
            <div class="field"><label for="quota">Quota</label>
              <input id="quota" name="quota" value="${qf.value}" maxlength="20" placeholder="200G" aria-describedby="${qf.error ? 'quota-error quota-hint' : 'quota-hint'}"${invalid(Boolean(qf.error))}>
              ${fieldError('quota-error', qf.error)}
              <div class="hint" id="quota-hint">A size like <code>512M</code>, <code>200G</code> or <code>2T</code>; empty for no quota.</div>
            </div>
            <button class="btn" type="submit">Save quota</button>
          </form>`
            : html`<dl class="facts" data-testid="quota-readonly">
            <dt>Quota</dt><dd><strong>${s.quotaBytes === null ? 'none' : bytes(s.quotaBytes)}</strong></dd>
            <dt>Used</dt><dd>${bytes(s.storedBytes)}${s.quotaBytes === null ? '' : html` <span class="muted">(${bytes(Math.max(0, s.quotaBytes - s.storedBytes))} left)</span>`}</dd>
          </dl>
          <p class="small muted">The quota is set by the server admin (<code>floe org set ${org} --quota 200G</code>). Pushes that would go past it are refused with 413; pins, a shorter retention window and <code>floe gc</code> free space.</p>`
        }
      </section>
    </div>
    <h2 id="pins-title">Pins</h2>
    <p class="small muted">A pin keeps a store path and its closure in every slice of ${org} that holds it, until it expires.</p>
    <div class="card table-card"><table class="list" data-testid="pins" aria-labelledby="pins-title">
      <thead><tr><th scope="col">Name</th><th scope="col">Store path</th><th scope="col">Expires</th><th scope="col">Created</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
      <tbody>${
        pins.length
          ? pins.map(
              (p) => html`<tr data-pin="${p.name}">
          <td><strong>${p.name}</strong></td>
          <td class="small"><code class="wrap-any" title="${p.storePath}">${p.storePath}</code></td>
          <td class="small">${p.expiresAt === null ? html`<span class="muted">never</span>` : p.expiresAt <= now ? html`<span class="badge danger">expired</span>` : when(p.expiresAt)}</td>
          <td class="small">${when(p.createdAt)}<div class="muted truncate" title="${p.createdBy}">${p.createdBy}</div></td>
          <td><form method="post" action="/manage/${org}/storage/pins/${p.name}/remove" class="inline">${csrfField(ctx)}<button class="btn danger small" type="submit" aria-label="Remove pin ${p.name}">Remove</button></form></td>
        </tr>`,
            )
          : html`<tr><td colspan="5" class="empty">No pins: only release outputs and the retention window keep paths.</td></tr>`
      }</tbody></table></div>
    <section class="card" aria-labelledby="add-pin-title">
      <h2 id="add-pin-title">Add a pin</h2>
      <form method="post" action="/manage/${org}/storage/pins">
        ${csrfField(ctx)}
        <div class="pin-fields">
          <div class="field"><label for="pin-name">Name</label><input id="pin-name" name="name" required maxlength="63" value="${pf.name}" placeholder="prod-2026-11"${invalid(pe?.field === 'name')}${pe?.field === 'name' ? html` aria-describedby="pin-error"` : ''}></div>
          <div class="field"><label for="pin-path">Store path</label><input id="pin-path" name="storePath" required maxlength="300" value="${pf.storePath}" placeholder="/nix/store/…-nixos-system-web" spellcheck="false"${invalid(pe?.field === 'storePath')}${pe?.field === 'storePath' ? html` aria-describedby="pin-error"` : ''}></div>
          <div class="field"><label for="pin-ttl">Expires after <span class="muted">(optional)</span></label><input id="pin-ttl" name="ttl" maxlength="20" value="${pf.ttl}" placeholder="180d"${invalid(pe?.field === 'ttl')}${pe?.field === 'ttl' ? html` aria-describedby="pin-error"` : ''}></div>
        </div>
        ${fieldError('pin-error', pe?.message)}
        <p class="hint">The path must already be in one of ${org}'s slices. Adding a pin with an existing name moves it.</p>
        <button class="btn" type="submit">Add pin</button>
      </form>
    </section>`;
}

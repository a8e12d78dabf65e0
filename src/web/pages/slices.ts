/** The slices tab of an org: slices, their visibility and view, follows and signing keys. */
import { html } from 'hono/html';
import { type Html, type PageContext, csrfField, notice } from '../layout.js';

export interface SlicesView {
  slices: Array<{ name: string; public: boolean; inView: boolean; priority: number; trusts: string[] }>;
  follows: Array<{ org: string; slice: string; priority: number }>;
  keys: Array<{ name: string; publicKey: string; state: string }>;
}

export function slicesTab(ctx: PageContext, org: string, publicUrl: string, view: SlicesView, error?: string): Html {
  const ordered = [...view.slices].sort(
    (a, b) =>
      Number(b.name === 'default') - Number(a.name === 'default') ||
      a.priority - b.priority ||
      a.name.localeCompare(b.name),
  );
  return html`
    <p class="lead">Slices are separately readable parts of the cache. Every slice is closure-complete; <code>default</code> always exists.
    Members' <code>${publicUrl}/cache</code> consults the slices marked <em>in view</em> (default first) and the slices ${org} follows; every slice also answers at its own URL.</p>
    ${error ? notice('error', error) : ''}
    <div class="card table-card"><table class="list">
      <thead><tr><th scope="col">Slice</th><th scope="col">Substituter</th><th scope="col">Readable by</th><th scope="col">On /cache</th><th scope="col">Takes references from</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
      <tbody>${ordered.map(
        (
          s,
        ) => html`<tr><td><code>${s.name}</code></td><td class="small"><code>${publicUrl}/cache/${org}/${s.name}</code></td><td>${s.public ? html`<span class="badge ok">anyone</span>` : html`<span class="badge private">members</span>`}</td>
        <td>${s.inView ? html`<span class="badge ok">in view${s.name === 'default' ? '' : ` (${s.priority})`}</span>` : html`<span class="badge">own URL only</span>`}</td>
        <td class="small">${(s.name === 'default' ? s.trusts : ['default', ...s.trusts]).join(', ') || 'uploads only'}</td>
        <td><form method="post" action="/manage/${org}/slices/${s.name}/visibility" class="inline">${csrfField(ctx)}<input type="hidden" name="public" value="${s.public ? '0' : '1'}"><button class="btn secondary small" type="submit">Make ${s.public ? 'private' : 'public'}</button></form>
        ${s.name === 'default' ? '' : html`<form method="post" action="/manage/${org}/slices/${s.name}/view" class="inline">${csrfField(ctx)}<input type="hidden" name="inView" value="${s.inView ? '0' : '1'}"><button class="btn secondary small" type="submit">${s.inView ? 'Remove from view' : 'Add to view'}</button></form>`}</td></tr>`,
      )}${view.follows.map(
        (f) =>
          html`<tr><td><code>${f.org}/${f.slice}</code></td><td class="small"><code>${publicUrl}/cache/${f.org}/${f.slice}</code></td><td><span class="badge">followed</span></td><td><span class="badge ok">in view (${f.priority})</span></td><td class="small">never linked</td><td></td></tr>`,
      )}</tbody></table></div>
    <section class="card" aria-labelledby="keys-title">
      <h2 id="keys-title">Signing keys</h2>
      <p class="small muted">Narinfos of ${org}'s slices are signed with these keys; machines put them in <code>trusted-public-keys</code> (<code>floe cache use</code> does). Rotate with <code>floe keys rotate --org ${org}</code>.</p>
      <ul>${view.keys.map((k) => html`<li><code>${k.publicKey}</code> <span class="badge${k.state === 'active' ? ' ok' : ''}">${k.state}</span></li>`)}</ul>
    </section>
    <section class="card" aria-labelledby="new-slice-title">
      <h2 id="new-slice-title">New slice</h2>
      <form method="post" action="/manage/${org}/slices" class="row start">
        ${csrfField(ctx)}
        <div class="field"><label for="slice-name">Name</label><input id="slice-name" name="name" required pattern="[a-z0-9][a-z0-9_\\-]{0,62}" placeholder="releases"></div>
        <label class="check-inline"><input type="checkbox" name="public" value="1"> readable by anyone</label>
        <label class="check-inline"><input type="checkbox" name="inView" value="1"> in members' view</label>
        <button class="btn" type="submit">Create slice</button>
      </form>
    </section>`;
}

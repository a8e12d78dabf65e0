/** Policies (edit with inline validation, test a request, roll back) and the audit log with filters. */
import { html } from 'hono/html';
import type { AuditEntry } from '../../audit/log.js';
import type { PolicyVersion } from '../../org/policies.js';
import type { PolicyProblem } from '../../policy/cedar.js';
import { ACTIONS } from '../../policy/actions.js';
import { type Html, type PageContext, csrfField, notice, when } from '../layout.js';
import { AUTH_METHODS, SCOPES, VISIBILITIES } from '../../wire/access.js';

export const EXAMPLE_POLICY = `// Org policies are Cedar. They can only narrow what tokens' scopes allow.
// Example (uncomment to use): cache writes only from CI on the main branch.
//
// @id("ci-writes-from-main")
// forbid (principal, action == Floe::Action::"cache.write", resource)
// unless { principal has claims.ref && principal.claims.ref == "refs/heads/main" };
`;

export interface PolicyForm {
  source: string;
  message?: string;
  problems?: PolicyProblem[];
  /** Set after a successful validate-only submission. */
  validated?: string[];
  applied?: PolicyVersion;
}

export interface PolicyTest {
  subject: string;
  scopes: string[];
  authMethod: string;
  action: string;
  resourceKind: 'slice' | 'flake' | 'org';
  resourceName: string;
  visibility: string;
  result?: { decision: string; reason: string; decidedBy?: string };
  error?: string;
}

export function policiesTab(
  ctx: PageContext,
  org: string,
  current: (PolicyVersion & { source: string }) | undefined,
  history: PolicyVersion[],
  form: PolicyForm,
  test: PolicyTest,
  slices: string[],
): Html {
  const problems = form.problems ?? [];
  return html`
    ${form.applied ? notice('ok', html`Version ${form.applied.version} is active${form.applied.policyIds.length ? html`: ${form.applied.policyIds.join(', ')}` : ' (no policies: the baseline alone decides)'}.`) : ''}
    <p class="lead">Policies narrow what tokens may do in ${org} (written in <a href="https://www.cedarpolicy.com/">Cedar</a> against Floe's <a href="/api/v1/policy/schema">schema</a>). They are validated before they apply; every version is kept.</p>
    <div class="layout">
      <section class="card" aria-labelledby="edit-title">
        <h2 id="edit-title">${current ? html`Version ${current.version}` : 'No policies yet'}</h2>
        <form method="post" action="/manage/${org}/policies">
          ${csrfField(ctx)}
          <div class="field">
            <label for="source">Policies</label>
            <textarea id="source" name="source" spellcheck="false" rows="16" aria-describedby="source-help${problems.length ? ' source-problems' : ''}"${problems.length ? html` aria-invalid="true"` : ''}>${form.source}</textarea>
            ${
              problems.length
                ? html`<div id="source-problems" role="alert" data-testid="policy-problems">${problems.map(
                    (p) =>
                      html`<p class="error-text">${p.line ? html`Line ${p.line}${p.column ? `:${p.column}` : ''}: ` : ''}${p.policyId ? html`<code>${p.policyId}</code>: ` : ''}${p.message}</p>`,
                  )}</div>`
                : ''
            }
            ${form.validated ? html`<p class="notice ok small" role="status">Valid: ${form.validated.length ? form.validated.join(', ') : 'no policies'}.</p>` : ''}
            <p class="hint" id="source-help">Give each policy an <code>@id("…")</code>: decisions and the audit log name it.</p>
          </div>
          <div class="field"><label for="message">Change note <span class="muted">(optional)</span></label><input id="message" name="message" maxlength="500" value="${form.message ?? ''}"></div>
          <div class="row"><div>
            <button class="btn" type="submit" name="intent" value="apply">Validate and apply</button>
            <button class="btn secondary" type="submit" name="intent" value="validate">Validate only</button>
          </div></div>
        </form>
      </section>
      <aside class="side" aria-label="Policy history and tests">
        <section class="card" aria-labelledby="history-title">
          <h2 id="history-title">History</h2>
          ${
            history.length
              ? html`<ul class="plain">${history.slice(0, 12).map(
                  (
                    v,
                  ) => html`<li class="provider"><div><strong>v${v.version}</strong> <span class="small muted">${when(v.createdAt)}</span><div class="small muted">${v.message ?? v.createdBy}</div></div>
                  ${
                    current && v.version !== current.version
                      ? html`<form method="post" action="/manage/${org}/policies/rollback" class="inline">${csrfField(ctx)}<input type="hidden" name="version" value="${v.version}"><button class="btn secondary small" type="submit" aria-label="Roll back to version ${v.version}">Roll back</button></form>`
                      : html`<span class="badge ok">active</span>`
                  }</li>`,
                )}</ul>`
              : html`<p class="small muted">Nothing applied yet: the baseline (scopes, slices, visibility) decides alone.</p>`
          }
        </section>
        <section class="card" aria-labelledby="test-title">
          <h2 id="test-title">Test a request</h2>
          <form method="post" action="/manage/${org}/policies/test">
            ${csrfField(ctx)}
            <div class="field"><label for="t-subject">Subject</label><input id="t-subject" name="subject" value="${test.subject}"></div>
            <fieldset><legend>Scopes</legend><div class="checks">
              ${SCOPES.map((s) => html`<label><input type="checkbox" name="scopes" value="${s}"${test.scopes.includes(s) ? html` checked` : ''}> ${s}</label>`)}
            </div></fieldset>
            <div class="field"><label for="t-auth">Signed in with</label><select id="t-auth" name="authMethod">${AUTH_METHODS.map((m) => html`<option${m === test.authMethod ? html` selected` : ''}>${m}</option>`)}</select></div>
            <div class="field"><label for="t-action">Action</label><select id="t-action" name="action">${ACTIONS.filter((a) => a !== 'server.admin').map((a) => html`<option${a === test.action ? html` selected` : ''}>${a}</option>`)}</select></div>
            <div class="field"><label for="t-kind">Resource</label><select id="t-kind" name="resourceKind">${(['slice', 'flake', 'org'] as const).map((k) => html`<option${k === test.resourceKind ? html` selected` : ''}>${k}</option>`)}</select></div>
            <div class="field"><label for="t-name">Slice or flake name</label><input id="t-name" name="resourceName" value="${test.resourceName}" list="slice-names"><datalist id="slice-names">${slices.map((s) => html`<option value="${s}">`)}</datalist></div>
            <div class="field"><label for="t-vis">Flake visibility</label><select id="t-vis" name="visibility">${VISIBILITIES.map((v) => html`<option${v === test.visibility ? html` selected` : ''}>${v}</option>`)}</select></div>
            <button class="btn secondary" type="submit">Run test</button>
          </form>
          ${test.error ? html`<p class="error-text" role="alert">${test.error}</p>` : ''}
          ${
            test.result
              ? html`<div class="notice ${test.result.decision === 'allow' ? 'ok' : 'error'}" role="status" data-testid="policy-test-result"><strong>${test.result.decision}</strong> — ${test.result.reason}${test.result.decidedBy ? html` <span class="small">(${test.result.decidedBy})</span>` : ''}</div>`
              : ''
          }
        </section>
      </aside>
    </div>`;
}

export interface AuditFilters {
  action: string;
  outcome: string;
  actor: string;
  since: string;
}

export function auditTab(org: string, entries: AuditEntry[], filters: AuditFilters, next: number | undefined): Html {
  const q = (extra: Record<string, string>) =>
    new URLSearchParams({ ...Object.fromEntries(Object.entries(filters).filter(([, v]) => v)), ...extra }).toString();
  return html`
    <form method="get" action="/manage/${org}/audit" class="card filters" aria-label="Filter the audit log">
      <div class="stats">
        <div class="field"><label for="f-action">Action</label><input id="f-action" name="action" value="${filters.action}" placeholder="policy. or token.create"></div>
        <div class="field"><label for="f-outcome">Outcome</label><select id="f-outcome" name="outcome">${['', 'allow', 'deny', 'event'].map((o) => html`<option value="${o}"${o === filters.outcome ? html` selected` : ''}>${o || 'any'}</option>`)}</select></div>
        <div class="field"><label for="f-actor">Actor contains</label><input id="f-actor" name="actor" value="${filters.actor}"></div>
        <div class="field"><label for="f-since">Since</label><input id="f-since" name="since" type="date" value="${filters.since}"></div>
      </div>
      <div class="row"><button class="btn secondary" type="submit">Filter</button>
      <a class="small" href="/manage/${org}/audit/export?${q({})}">Export as JSON lines</a></div>
    </form>
    <div class="card table-card"><table class="list" data-testid="audit">
      <thead><tr><th scope="col">When</th><th scope="col">Actor</th><th scope="col">Action</th><th scope="col">Target</th><th scope="col">Outcome</th></tr></thead>
      <tbody>${
        entries.length
          ? entries.map(
              (e) => html`<tr>
          <td class="small nowrap"><time datetime="${e.at}" title="${e.at}">${e.at.slice(0, 16).replace('T', ' ')}</time></td>
          <td class="small"><div class="truncate" title="${e.actor}">${e.actor}</div></td>
          <td><code>${e.action}</code></td>
          <td class="small wrap-any">${e.target}${e.reason ? html`<div class="muted">${e.reason}</div>` : ''}</td>
          <td><span class="badge ${e.outcome === 'deny' ? 'danger' : e.outcome === 'allow' ? 'ok' : ''}">${e.outcome}</span></td>
        </tr>`,
            )
          : html`<tr><td colspan="5" class="empty">No entries match.</td></tr>`
      }</tbody></table></div>
    ${next !== undefined ? html`<p><a class="btn secondary" href="/manage/${org}/audit?${q({ before: String(next) })}">Older entries →</a></p>` : ''}`;
}

/** The usage tab of an org: cache use, pushes and storage over time, what the server served. */
import { html } from 'hono/html';
import type { OrgUsage } from '../../cache/usage.js';
import type { UsageSnapshot } from '../../cache/usage-history.js';
import { type Html, ago, bytes, count, when } from '../layout.js';
import { barChart, lineChart, meter } from '../charts.js';

export interface ServedStats {
  hits: number;
  misses: number;
  narBytesServed: number;
  uploadsAccepted: number;
  uploadsRejected: number;
  since: string;
}

/** The last `days` UTC days, oldest first, with the snapshot of each day or null. */
function dailySeries(
  history: UsageSnapshot[],
  days: number,
  now = new Date(),
): Array<{ day: string; snap: UsageSnapshot | null }> {
  const byDay = new Map(history.map((h) => [h.day, h]));
  const out: Array<{ day: string; snap: UsageSnapshot | null }> = [];
  for (let i = days - 1; i >= 0; i--) {
    const day = new Date(now.getTime() - i * 86_400_000).toISOString().slice(0, 10);
    out.push({ day, snap: byDay.get(day) ?? null });
  }
  return out;
}

export function usageTab(
  org: string,
  u: OrgUsage,
  served: ServedStats,
  publicUrl: string,
  history: UsageSnapshot[] = [],
): Html {
  const lookups = served.hits + served.misses;
  const hitRate = lookups ? served.hits / lookups : 0;
  const pushed30 = u.pushesPerDay.reduce((a, d) => a + d.paths, 0);
  const shortDay = (d: string) =>
    new Date(`${d}T00:00:00Z`).toLocaleDateString('en-GB', { month: 'short', day: 'numeric', timeZone: 'UTC' });
  const series = dailySeries(history, 30);
  return html`
    <div class="stats">
      <div class="card stat"><div class="value" data-testid="stat-paths">${count(u.totalPaths)}</div><div class="what">store paths cached</div></div>
      <div class="card stat"><div class="value">${bytes(u.totalNarBytes)}</div><div class="what">NAR bytes stored</div></div>
      <div class="card stat"><div class="value">${count(pushed30)}</div><div class="what">paths pushed, last 30 days</div></div>
      <div class="card stat"><div class="value">${lookups ? `${(hitRate * 100).toFixed(1)}%` : '—'}</div><div class="what">narinfo hit rate*</div>${meter(hitRate, `hit rate ${(hitRate * 100).toFixed(1)} percent`)}</div>
    </div>
    <div class="two">
      <section class="card" aria-labelledby="pushes-title">
        <h2 id="pushes-title">Paths pushed per day</h2>
        ${barChart(
          u.pushesPerDay.map((d) => ({ label: shortDay(d.day), value: d.paths, title: `${d.day}: ${d.paths} paths` })),
          `Paths pushed per day over the last ${u.pushesPerDay.length} days`,
          count,
        )}
      </section>
      <section class="card" aria-labelledby="bytes-title">
        <h2 id="bytes-title">Bytes pushed per day</h2>
        ${barChart(
          u.pushesPerDay.map((d) => ({ label: shortDay(d.day), value: d.bytes, title: `${d.day}: ${bytes(d.bytes)}` })),
          `NAR bytes pushed per day over the last ${u.pushesPerDay.length} days`,
          bytes,
        )}
      </section>
    </div>
    <section class="card chart-card" aria-labelledby="storage-title" data-testid="storage-over-time">
      <div class="row"><h2 id="storage-title">Storage over time</h2><a class="small" href="/manage/${org}/storage">Quota, retention and pins</a></div>
      ${
        history.length
          ? lineChart(
              series.map((d) => ({
                label: shortDay(d.day),
                value: d.snap?.storedBytes ?? null,
                title: d.snap
                  ? `${d.day}: ${bytes(d.snap.storedBytes)} stored (${bytes(d.snap.logicalBytes)} logical, ${count(d.snap.paths)} ${d.snap.paths === 1 ? 'path' : 'paths'})`
                  : `${d.day}: no snapshot`,
              })),
              `Deduplicated stored bytes per day over the last ${series.length} days`,
              bytes,
              { width: 800, height: 150 },
            )
          : html`<p class="empty small">No daily snapshot yet: the server takes one shortly after it starts, every day, and after each garbage collection.</p>`
      }
      <p class="small muted">Stored bytes (deduplicated, compressed) at each day's last snapshot; days before the first one and days the server was down are gaps.</p>
    </section>
    <h2>Slices</h2>
    <div class="card table-card"><table class="list">
      <thead><tr><th scope="col">Slice</th><th scope="col">Readable by</th><th scope="col" class="num">Paths</th><th scope="col" class="num">Stored</th><th scope="col">Share of the org</th></tr></thead>
      <tbody>${u.slices.map(
        (
          s,
        ) => html`<tr><td><code>${s.slice}</code></td><td>${s.public ? 'anyone' : 'members'}</td><td class="num">${count(s.paths)}</td><td class="num">${bytes(s.narBytes)}</td>
          <td>${meter(u.totalNarBytes ? s.narBytes / u.totalNarBytes : 0, `${s.slice}: share of stored bytes`)}</td></tr>`,
      )}</tbody></table></div>
    <div class="two">
      <section aria-labelledby="recent-title"><h2 id="recent-title">Recent pushes</h2>
        <div class="card table-card">${
          u.recent.length
            ? html`<table class="list"><thead><tr><th scope="col">Path</th><th scope="col">By</th><th scope="col" class="num">Size</th></tr></thead><tbody>${u.recent.map(
                (r) =>
                  html`<tr><td><code title="${r.storePath}">${r.storePath.replace(/^(\/nix\/store\/)?[a-z0-9]{32}-/, '')}</code><div class="small muted">${r.slice} · ${ago(r.at)}</div></td><td class="small"><div class="truncate" title="${r.uploadedBy}">${r.uploadedBy}</div></td><td class="num">${bytes(r.narSize)}</td></tr>`,
              )}</tbody></table>`
            : html`<p class="empty">Nothing pushed yet. <code>floe push ./result</code></p>`
        }</div>
      </section>
      <section aria-labelledby="top-title"><h2 id="top-title">Top uploaders</h2>
        <div class="card table-card">${
          u.topUploaders.length
            ? html`<table class="list"><thead><tr><th scope="col">Principal</th><th scope="col" class="num">Paths</th><th scope="col" class="num">Bytes</th></tr></thead><tbody>${u.topUploaders.map(
                (t) =>
                  html`<tr><td class="small"><div class="truncate" title="${t.uploadedBy}">${t.uploadedBy}</div></td><td class="num">${count(t.paths)}</td><td class="num">${bytes(t.bytes)}</td></tr>`,
              )}</tbody></table>`
            : html`<p class="empty">No uploads yet.</p>`
        }</div>
      </section>
    </div>
    <section aria-labelledby="largest-title"><h2 id="largest-title">Largest paths</h2>
      <div class="card table-card">${
        u.largest.length
          ? html`<table class="list"><thead><tr><th scope="col">Path</th><th scope="col">Slice</th><th scope="col" class="num">NAR size</th></tr></thead><tbody>${u.largest.map(
              (l) =>
                html`<tr><td><code title="${l.storePath}">${l.storePath.replace(/^(\/nix\/store\/)?[a-z0-9]{32}-/, '')}</code></td><td class="small">${l.slice}</td><td class="num">${bytes(l.narSize)}</td></tr>`,
            )}</tbody></table>`
          : html`<p class="empty">Nothing stored yet.</p>`
      }</div>
    </section>
    <h2>Served by this server</h2>
    <div class="stats">
      <div class="card stat"><div class="value">${count(served.hits)}</div><div class="what">narinfo hits</div></div>
      <div class="card stat"><div class="value">${count(served.misses)}</div><div class="what">misses (or denied)</div></div>
      <div class="card stat"><div class="value">${bytes(served.narBytesServed)}</div><div class="what">NAR bytes served</div></div>
      <div class="card stat"><div class="value">${count(served.uploadsAccepted)} / ${count(served.uploadsRejected)}</div><div class="what">uploads accepted / rejected</div></div>
    </div>
    <p class="small muted">* Served counters are this replica's, for every org, since it started ${when(served.since)} (Prometheus has them per replica at <code>/metrics</code>). Substituter for this org: <code>${publicUrl}/cache/${org}/default</code> or the unified <code>${publicUrl}/cache</code>.</p>`;
}

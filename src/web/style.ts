/**
 * The web interface's one stylesheet, served at /static/floe-<hash>.css (immutable). Kept as a
 * module so the compiled server needs no asset copying. No inline styles anywhere: the pages'
 * Content-Security-Policy allows only this file.
 */
import { createHash } from 'node:crypto';

export const CSS = `
:root {
  color-scheme: light dark;
  --bg: #f7f8fa; --surface: #ffffff; --surface-2: #f1f3f7; --border: #e1e4ea;
  --text: #14171f; --muted: #545b69; --accent: #3451d1; --accent-soft: #e9edff; --accent-text: #ffffff;
  --ok: #1d7a46; --ok-soft: #e4f5ea; --warn: #8a5a00; --warn-soft: #fff3d6; --danger: #b42323; --danger-soft: #fdeaea;
  --code-bg: #f1f3f7; --shadow: 0 1px 2px rgba(16,24,40,.06), 0 1px 3px rgba(16,24,40,.08);
  --radius: 10px; --mono: ui-monospace, "SF Mono", "Cascadia Code", "JetBrains Mono", Menlo, Consolas, monospace;
  --sans: Inter, ui-sans-serif, system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0e1116; --surface: #161a22; --surface-2: #1c212b; --border: #2a303c;
    --text: #e7e9ee; --muted: #a0a8b8; --accent: #8fa2ff; --accent-soft: #222a4a; --accent-text: #0e1116;
    --ok: #6fd39a; --ok-soft: #15301f; --warn: #f0c060; --warn-soft: #33280f; --danger: #ff8a8a; --danger-soft: #3a1818;
    --code-bg: #1c212b; --shadow: 0 1px 2px rgba(0,0,0,.4);
  }
}
*, *::before, *::after { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; background: var(--bg); color: var(--text); font: 16px/1.6 var(--sans); }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; border-radius: 4px; }
.skip { position: absolute; left: -9999px; top: 0; }
.skip:focus { left: 1rem; top: .5rem; background: var(--surface); padding: .5rem 1rem; z-index: 10; }
.wrap { max-width: 1120px; margin: 0 auto; padding: 0 1.5rem; }
header.site { background: var(--surface); border-bottom: 1px solid var(--border); }
header.site .wrap { display: flex; align-items: center; gap: 1.5rem; height: 64px; }
.brand { display: flex; align-items: center; gap: .55rem; font-weight: 700; font-size: 1.15rem; color: var(--text); letter-spacing: -.01em; }
.brand:hover { text-decoration: none; }
.brand svg { width: 28px; height: 28px; }
nav.main { display: flex; gap: .25rem; flex: 1; }
nav.main a, .navlink { color: var(--muted); padding: .4rem .7rem; border-radius: 8px; font-weight: 500; font-size: .95rem; }
nav.main a:hover, nav.main a[aria-current="page"] { color: var(--text); background: var(--surface-2); text-decoration: none; }
.who { display: flex; align-items: center; gap: .75rem; font-size: .9rem; color: var(--muted); }
.who form { margin: 0; }
main { padding: 2rem 0 4rem; min-height: calc(100vh - 64px - 80px); }
footer.site { border-top: 1px solid var(--border); color: var(--muted); font-size: .85rem; }
footer.site .wrap { display: flex; justify-content: space-between; padding-top: 1.5rem; padding-bottom: 1.5rem; }
h1, h2, h3 { line-height: 1.25; letter-spacing: -.015em; }
h1 { font-size: 2rem; margin: 0 0 .5rem; }
h2 { font-size: 1.25rem; margin: 2rem 0 .75rem; }
h3 { font-size: 1.05rem; margin: 1.5rem 0 .5rem; }
p.lead { font-size: 1.15rem; color: var(--muted); margin: 0 0 1.5rem; max-width: 46rem; }
.muted { color: var(--muted); }
.small { font-size: .875rem; }
code, pre, kbd { font-family: var(--mono); font-size: .875em; }
code { background: var(--code-bg); padding: .1em .35em; border-radius: 5px; }
pre { background: var(--code-bg); padding: .9rem 1rem; border-radius: 8px; overflow-x: auto; line-height: 1.5; border: 1px solid var(--border); }
pre code { background: none; padding: 0; }
.hero { padding: 2.5rem 0 1.5rem; }
.hero h1 { font-size: 2.6rem; max-width: 40rem; }
.search { display: flex; gap: .5rem; max-width: 40rem; }
.search input { flex: 1; }
input[type=text], input[type=search], input[type=date], input[type=password], input:not([type]), select, textarea {
  font: inherit; color: var(--text); background: var(--surface); border: 1px solid var(--border); border-radius: 8px; padding: .6rem .8rem; width: 100%;
}
textarea { font-family: var(--mono); font-size: .875rem; min-height: 10rem; }
textarea[rows="3"] { min-height: 4.5rem; }
input:focus, select:focus, textarea:focus { border-color: var(--accent); outline: 3px solid var(--accent-soft); outline-offset: 0; }
label { display: block; font-weight: 600; font-size: .9rem; margin: 0 0 .35rem; }
.field { margin-bottom: 1rem; }
.hint { color: var(--muted); font-size: .85rem; margin-top: .3rem; font-weight: 400; }
fieldset { border: 1px solid var(--border); border-radius: 8px; padding: .75rem 1rem; margin: 0 0 1rem; }
legend { font-weight: 600; font-size: .9rem; padding: 0 .35rem; }
.checks { display: flex; flex-wrap: wrap; gap: 1rem; }
.checks label { display: flex; align-items: center; gap: .4rem; font-weight: 500; margin: 0; }
.btn { display: inline-flex; align-items: center; gap: .4rem; font: inherit; font-weight: 600; font-size: .95rem; padding: .6rem 1.1rem; border-radius: 8px; border: 1px solid transparent; cursor: pointer; background: var(--accent); color: var(--accent-text); white-space: nowrap; }
.btn:hover { filter: brightness(1.08); text-decoration: none; }
.btn.secondary { background: var(--surface); color: var(--text); border-color: var(--border); }
.btn.danger { background: var(--surface); color: var(--danger); border-color: var(--border); }
.btn.small { padding: .3rem .7rem; font-size: .85rem; }
.grid { display: grid; gap: 1rem; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); }
.card { background: var(--surface); border: 1px solid var(--border); border-radius: var(--radius); padding: 1.1rem 1.25rem; box-shadow: var(--shadow); }
a.card { display: block; color: inherit; transition: border-color .15s; }
a.card:hover { border-color: var(--accent); text-decoration: none; }
.card h3 { margin: 0 0 .3rem; font-size: 1.05rem; }
.card .name { color: var(--muted); font-weight: 500; }
.card p { margin: .25rem 0 .6rem; color: var(--muted); font-size: .93rem; }
.badge { display: inline-block; font-size: .75rem; font-weight: 600; padding: .12rem .5rem; border-radius: 999px; background: var(--surface-2); color: var(--muted); border: 1px solid var(--border); vertical-align: middle; }
.badge.private { background: var(--warn-soft); color: var(--warn); border-color: transparent; }
.badge.unlisted { background: var(--accent-soft); color: var(--accent); border-color: transparent; }
.badge.ok { background: var(--ok-soft); color: var(--ok); border-color: transparent; }
.badge.danger { background: var(--danger-soft); color: var(--danger); border-color: transparent; }
.labels { display: flex; flex-wrap: wrap; gap: .35rem; }
.label { font-size: .78rem; padding: .1rem .55rem; border-radius: 999px; background: var(--accent-soft); color: var(--accent); font-weight: 500; }
.layout { display: grid; grid-template-columns: minmax(0, 1fr) 340px; gap: 2rem; align-items: start; }
@media (max-width: 900px) { .layout { grid-template-columns: 1fr; } .hero h1 { font-size: 2rem; } }
.side > section { margin-bottom: 1.25rem; }
.side h2 { font-size: .8rem; text-transform: uppercase; letter-spacing: .06em; color: var(--muted); margin: 0 0 .6rem; }
.crumbs { font-size: .9rem; color: var(--muted); margin-bottom: .75rem; }
.crumbs a { color: var(--muted); }
.title-row { display: flex; align-items: center; gap: .75rem; flex-wrap: wrap; }
.readme { line-height: 1.7; }
.readme h1 { font-size: 1.6rem; } .readme h2 { font-size: 1.3rem; border-bottom: 1px solid var(--border); padding-bottom: .3rem; }
.readme img { max-width: 100%; } .readme .readme-source { white-space: pre-wrap; }
.readme table { border-collapse: collapse; } .readme td, .readme th { border: 1px solid var(--border); padding: .3rem .6rem; }
.readme blockquote { margin: 0; padding: 0 1rem; border-left: 4px solid var(--border); color: var(--muted); }
table.list { width: 100%; border-collapse: collapse; font-size: .93rem; }
table.list th { text-align: left; font-size: .78rem; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); font-weight: 600; padding: .5rem .75rem; border-bottom: 1px solid var(--border); }
table.list td { padding: .65rem .75rem; border-bottom: 1px solid var(--border); vertical-align: top; }
table.list tr:last-child td { border-bottom: none; }
table.list td.num, table.list th.num { text-align: right; font-variant-numeric: tabular-nums; }
.table-card { padding: 0; overflow-x: auto; }
.tabs { display: flex; gap: .25rem; border-bottom: 1px solid var(--border); margin: 1rem 0 1.5rem; overflow-x: auto; }
.tabs a { padding: .6rem .9rem; color: var(--muted); font-weight: 500; border-bottom: 2px solid transparent; margin-bottom: -1px; white-space: nowrap; }
.tabs a[aria-current="page"] { color: var(--text); border-bottom-color: var(--accent); }
.tabs a:hover { color: var(--text); text-decoration: none; }
.notice { border-radius: 8px; padding: .8rem 1rem; margin: 0 0 1.25rem; border: 1px solid transparent; }
.notice.error { background: var(--danger-soft); color: var(--danger); }
.notice.ok { background: var(--ok-soft); color: var(--ok); }
.notice.info { background: var(--accent-soft); color: var(--text); }
.secret { display: flex; gap: .5rem; align-items: center; }
.secret code { word-break: break-all; font-size: .8rem; padding: .6rem; display: block; flex: 1; }
.stats { display: grid; gap: 1rem; grid-template-columns: repeat(auto-fit, minmax(180px, 1fr)); margin-bottom: 1.5rem; }
.stat .value { font-size: 1.7rem; font-weight: 700; letter-spacing: -.02em; font-variant-numeric: tabular-nums; }
.stat .what { color: var(--muted); font-size: .85rem; font-weight: 500; }
.chart { width: 100%; height: auto; display: block; }
.chart .bar { fill: var(--accent); }
.chart .bar2 { fill: var(--ok); }
.chart .axis { stroke: var(--border); }
.chart-card { margin-top: 1rem; }
.chart .line { fill: none; stroke: var(--accent); stroke-width: 2; stroke-linejoin: round; stroke-linecap: round; }
.chart .area { fill: var(--accent); opacity: .12; }
.chart .dot { fill: var(--surface); stroke: var(--accent); stroke-width: 2; }
.chart text { fill: var(--muted); font: 10px var(--sans); }
.meter { height: 10px; border-radius: 999px; background: var(--surface-2); overflow: hidden; }
.meter svg { display: block; width: 100%; height: 10px; }
.meter rect { fill: var(--ok); }
.empty { text-align: center; padding: 2.5rem 1rem; color: var(--muted); }
.empty h2 { color: var(--text); margin-top: 0; }
.row { display: flex; gap: 1rem; align-items: center; justify-content: space-between; flex-wrap: wrap; }
.stack > * + * { margin-top: 1rem; }
.two { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 1rem; } @media (max-width: 800px) { .two { grid-template-columns: 1fr; } }
dl.facts { display: grid; grid-template-columns: auto 1fr; gap: .35rem 1rem; margin: 0; font-size: .93rem; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; word-break: break-word; }
ul.plain { list-style: none; padding: 0; margin: 0; }
ul.tree { list-style: none; padding-left: 1rem; margin: .2rem 0; border-left: 1px solid var(--border); }
ul.tree li { font-family: var(--mono); font-size: .85rem; }
.login-box { max-width: 460px; margin: 2rem auto; }
.provider { display: flex; align-items: center; justify-content: space-between; gap: 1rem; padding: .9rem 0; border-bottom: 1px solid var(--border); }
.provider:last-child { border-bottom: none; }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
.inline { display: inline; margin: 0; }
.card > h2:first-child, .card > h3:first-child, .card > .row:first-child > h2 { margin-top: 0; }
.table-card { margin-bottom: 1.5rem; }
td.num, td time, .nowrap { white-space: nowrap; }
.side pre, .two pre { white-space: pre-wrap; word-break: break-all; }
.side h3 { font-size: .9rem; margin: 1.1rem 0 .4rem; }
.side .card h2 + .labels, .side dl + h2 { margin-top: 1rem; }
.version { font-variant-numeric: tabular-nums; }
.truncate { max-width: 16rem; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.wrap-any { overflow-wrap: anywhere; }
form.filters { margin-bottom: 1.25rem; }
form.filters .stats { margin-bottom: .5rem; }
form.filters .row { justify-content: flex-start; }
details.card { margin-top: 1rem; }
details summary { cursor: pointer; font-weight: 600; }
details[open] summary { margin-bottom: .75rem; }
.row.start { justify-content: flex-start; align-items: flex-end; }
.row.start .field { margin-bottom: 0; }
.check-inline { display: flex; align-items: center; gap: .4rem; font-weight: 500; margin: 0 0 .7rem; }
dl.facts dd code { overflow-wrap: anywhere; }
.pin-fields { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 2.2fr) minmax(0, 1fr); gap: 1rem; } @media (max-width: 800px) { .pin-fields { grid-template-columns: 1fr; } }
.pin-fields .field { margin-bottom: .25rem; }
.error-text { color: var(--danger); font-size: .875rem; margin-top: .35rem; font-weight: 500; }
`;

export const CSS_HASH = createHash('sha256').update(CSS).digest('hex').slice(0, 12);
export const CSS_PATH = `/static/floe-${CSS_HASH}.css`;

/**
 * Charts as server-rendered SVG: no script, no dependency, readable without JavaScript and
 * allowed by the pages' Content-Security-Policy. Colours come from the stylesheet (classes).
 */
import { html } from 'hono/html';
import type { Html } from './layout.js';

export interface Bar {
  label: string;
  value: number;
  /** Tooltip and accessible text. */
  title: string;
}

/** A bar chart with a labelled max line and first/last x labels; `describe` is its accessible name. */
export function barChart(bars: Bar[], describe: string, format: (n: number) => string): Html {
  const width = 400;
  const height = 150;
  const left = 4;
  const bottom = 18;
  const top = 16;
  const max = Math.max(1, ...bars.map((b) => b.value));
  const slot = (width - left * 2) / Math.max(1, bars.length);
  const barWidth = Math.max(2, slot * 0.7);
  const plot = height - bottom - top;
  return html`<svg class="chart" viewBox="0 0 ${width} ${height}" role="img" aria-label="${describe}">
    <title>${describe}</title>
    <line class="axis" x1="${left}" x2="${width - left}" y1="${height - bottom}" y2="${height - bottom}"/>
    <line class="axis" x1="${left}" x2="${width - left}" y1="${top}" y2="${top}" stroke-dasharray="3 4"/>
    <text x="${width - left}" y="${top - 5}" text-anchor="end">${format(max)}</text>
    ${bars.map((b, i) => {
      const h = b.value === 0 ? 0 : Math.max(2, (b.value / max) * plot);
      const x = left + i * slot + (slot - barWidth) / 2;
      return html`<rect class="bar" x="${x.toFixed(1)}" y="${(height - bottom - h).toFixed(1)}" width="${barWidth.toFixed(1)}" height="${h.toFixed(1)}" rx="2"><title>${b.title}</title></rect>`;
    })}
    ${bars.length ? html`<text x="${left}" y="${height - 4}">${bars[0]!.label}</text><text x="${width - left}" y="${height - 4}" text-anchor="end">${bars.at(-1)!.label}</text>` : ''}
  </svg>`;
}

/** A horizontal share bar (e.g. hit rate), with its value in text next to it by the caller. */
export function meter(fraction: number, describe: string): Html {
  const pct = Math.max(0, Math.min(1, Number.isFinite(fraction) ? fraction : 0)) * 100;
  return html`<div class="meter"><svg viewBox="0 0 100 10" preserveAspectRatio="none" role="img" aria-label="${describe}"><rect x="0" y="0" width="${pct.toFixed(2)}" height="10"/></svg></div>`;
}

export interface Point {
  label: string;
  /** null: no data that day (a gap in the line). */
  value: number | null;
  /** Tooltip and accessible text. */
  title: string;
}

/**
 * A line with a soft area under it, for levels over time (e.g. stored bytes per day): labelled max
 * line, first/last x labels, a dot per known value (with its tooltip); unknown values leave gaps.
 */
export function lineChart(
  points: Point[],
  describe: string,
  format: (n: number) => string,
  opts: { width?: number; height?: number } = {},
): Html {
  const width = opts.width ?? 400;
  const height = opts.height ?? 150;
  const left = 4;
  const bottom = 18;
  const top = 16;
  const base = height - bottom;
  const max = Math.max(1, ...points.map((p) => p.value ?? 0));
  const step = (width - left * 2 - 8) / Math.max(1, points.length - 1);
  const x = (i: number) => left + 4 + i * step;
  const y = (v: number) => base - (v / max) * (base - top);
  // Runs of consecutive known values: one line and one area each.
  const runs: Array<Array<[number, number]>> = [];
  let run: Array<[number, number]> = [];
  points.forEach((p, i) => {
    if (p.value === null) {
      if (run.length) runs.push(run);
      run = [];
    } else run.push([x(i), y(p.value)]);
  });
  if (run.length) runs.push(run);
  const d = (r: Array<[number, number]>) =>
    r.map(([px, py], i) => `${i ? 'L' : 'M'}${px.toFixed(1)} ${py.toFixed(1)}`).join(' ');
  return html`<svg class="chart" viewBox="0 0 ${width} ${height}" role="img" aria-label="${describe}">
    <title>${describe}</title>
    <line class="axis" x1="${left}" x2="${width - left}" y1="${base}" y2="${base}"/>
    <line class="axis" x1="${left}" x2="${width - left}" y1="${top}" y2="${top}" stroke-dasharray="3 4"/>
    <text x="${left}" y="${top - 5}">${format(max)}</text>
    ${runs.map(
      (r) =>
        html`${r.length > 1 ? html`<path class="area" d="${d(r)} L${r.at(-1)![0].toFixed(1)} ${base} L${r[0]![0].toFixed(1)} ${base} Z"/><path class="line" d="${d(r)}"/>` : ''}`,
    )}
    ${points.map((p, i) => (p.value === null ? '' : html`<circle class="dot" cx="${x(i).toFixed(1)}" cy="${y(p.value).toFixed(1)}" r="${points.length > 60 ? 1.5 : 3}"><title>${p.title}</title></circle>`))}
    ${points.length ? html`<text x="${left}" y="${height - 4}">${points[0]!.label}</text><text x="${width - left}" y="${height - 4}" text-anchor="end">${points.at(-1)!.label}</text>` : ''}
  </svg>`;
}

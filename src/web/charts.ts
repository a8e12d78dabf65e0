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

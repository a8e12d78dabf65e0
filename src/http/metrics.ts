/**
 * Prometheus text-format counters for the cache and the API, in-process and per replica (a
 * scraper adds replicas up). No dependency: a handful of counters does not need a client library.
 */
export class Metrics {
  private readonly counters = new Map<string, { help: string; values: Map<string, number> }>();

  constructor() {
    this.define('floe_http_requests_total', 'HTTP requests by area and status class');
    this.define('floe_narinfo_lookups_total', 'narinfo lookups by result (hit, miss_or_denied)');
    this.define('floe_nar_bytes_served_total', 'NAR bytes sent to clients');
    this.define('floe_uploads_total', 'NAR uploads by result (accepted, rejected)');
    this.define('floe_upload_bytes_total', 'bytes received in NAR uploads');
    this.define('floe_policy_decisions_total', 'authorization decisions by outcome (allow, deny)');
  }

  private define(name: string, help: string): void {
    this.counters.set(name, { help, values: new Map() });
  }

  inc(name: string, labels: Record<string, string> = {}, by = 1): void {
    const counter = this.counters.get(name);
    if (!counter) throw new Error(`unknown metric ${name}`);
    const key = Object.entries(labels)
      .map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, '_')}"`)
      .join(',');
    counter.values.set(key, (counter.values.get(key) ?? 0) + by);
  }

  render(): string {
    let out = '';
    for (const [name, c] of this.counters) {
      out += `# HELP ${name} ${c.help}\n# TYPE ${name} counter\n`;
      if (c.values.size === 0) out += `${name} 0\n`;
      for (const [labels, v] of c.values) out += `${name}${labels ? `{${labels}}` : ''} ${v}\n`;
    }
    return out;
  }
}

export function areaOf(pathname: string): string {
  if (pathname.startsWith('/cache')) return 'cache';
  if (pathname.startsWith('/f/')) return 'flakes';
  if (pathname.startsWith('/api/')) return 'api';
  return 'other';
}

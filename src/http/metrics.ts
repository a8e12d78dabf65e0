/**
 * Prometheus text-format metrics for the cache, the API and the web interface, in-process and per
 * replica (a scraper adds replicas up). No dependency: a handful of counters and histograms does
 * not need a client library.
 *
 * Labels are always from closed sets (route templates, status classes, outcomes), never raw paths
 * or names people choose, so the number of series stays bounded.
 */

import { FloeError } from '../errors.js';
import { CLIENT_CLOSED } from './errors.js';

/** Request latency buckets, seconds: narinfo hits are sub-millisecond, NAR uploads take minutes. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120];

interface Counter {
  type: 'counter' | 'gauge';
  help: string;
  values: Map<string, number>;
}

interface Histogram {
  type: 'histogram';
  help: string;
  buckets: number[];
  values: Map<string, { counts: number[]; sum: number; count: number }>;
}

const UNSAFE_IN_LABEL = /["\\\n]/;

/** Called several times per request: a plain loop, and a replace only when a value needs one. */
function labelKey(labels: Record<string, string>): string {
  let key = '';
  for (const k in labels) {
    const v = labels[k]!;
    key += `${key === '' ? '' : ','}${k}="${UNSAFE_IN_LABEL.test(v) ? v.replace(/["\\\n]/g, '_') : v}"`;
  }
  return key;
}

/** Outcomes of the authorizer (and of the policy engine that replaces its body). */
export type PolicyOutcome = 'allow' | 'deny' | 'error';
export type GcResult = 'ok' | 'failed';

export class Metrics {
  private readonly metrics = new Map<string, Counter | Histogram>();
  private readonly requestKeys = new Map<string, { total: string; duration: string }>();

  constructor() {
    this.define('floe_http_requests_total', 'HTTP requests by area and status class');
    this.histogram(
      'floe_http_request_duration_seconds',
      'HTTP request latency by method, route template and status class',
      LATENCY_BUCKETS,
    );
    this.define(
      'floe_http_received_bytes_total',
      'request bytes (head and body) received on HTTP connections, by area',
    );
    this.define('floe_http_sent_bytes_total', 'response bytes (head and body) sent on HTTP connections, by area');
    this.define('floe_narinfo_lookups_total', 'narinfo lookups by result (hit, miss_or_denied)');
    this.define('floe_nar_bytes_served_total', 'NAR bytes sent to clients');
    this.define('floe_uploads_total', 'NAR uploads by result (accepted, rejected)');
    this.define('floe_upload_bytes_total', 'bytes received in NAR uploads');
    this.define(
      'floe_upload_verification_failures_total',
      'uploads refused while verifying them, by reason (the error code)',
    );
    this.define('floe_policy_decisions_total', 'authorization decisions by outcome (allow, deny, error)');
    this.define(
      'floe_change_notices_unanswered_total',
      'replicas that did not acknowledge a change notice in time (PostgreSQL: the write went on without them)',
    );
    this.define('floe_gc_runs_total', 'garbage collection runs by result (ok, failed)');
    this.define('floe_gc_deleted_bytes_total', 'bytes deleted by garbage collection');
    this.define('floe_web_logins_total', 'web sign-ins by method and result');
    this.define(
      'floe_readme_renders_total',
      'READMEs rendered (at publish, or once for an older release) by result (html, text: too slow, shown as text)',
    );
    this.define('floe_process_start_time_seconds', 'when this process started, seconds since the epoch', 'gauge');
    this.set('floe_process_start_time_seconds', Math.floor(Date.now() / 1000));
    this.lookupHit = this.counter('floe_narinfo_lookups_total', { result: 'hit' });
    this.lookupMiss = this.counter('floe_narinfo_lookups_total', { result: 'miss_or_denied' });
  }

  private define(name: string, help: string, type: 'counter' | 'gauge' = 'counter'): void {
    this.metrics.set(name, { type, help, values: new Map() });
  }

  private histogram(name: string, help: string, buckets: number[]): void {
    this.metrics.set(name, { type: 'histogram', help, buckets, values: new Map() });
  }

  inc(name: string, labels: Record<string, string> = {}, by = 1): void {
    const m = this.metrics.get(name);
    if (!m || m.type === 'histogram') throw new Error(`unknown counter ${name}`);
    const key = labelKey(labels);
    m.values.set(key, (m.values.get(key) ?? 0) + by);
  }

  /**
   * An increment of one counter's one label set, resolved once: for the hot paths, which would
   * otherwise build the same label key on every request.
   */
  private counter(name: string, labels: Record<string, string> = {}): (by?: number) => void {
    const m = this.metrics.get(name);
    if (!m || m.type === 'histogram') throw new Error(`unknown counter ${name}`);
    const key = labelKey(labels);
    const values = m.values;
    return (by = 1) => {
      values.set(key, (values.get(key) ?? 0) + by);
    };
  }

  /** Resolved in the constructor, once their counter is defined. */
  private readonly lookupHit: () => void;
  private readonly lookupMiss: () => void;
  private readonly wireByArea = new Map<string, { received: (by: number) => void; sent: (by: number) => void }>();

  /** One narinfo lookup (every substitution asks): served, or missing and denied alike. */
  narinfoLookup(served: boolean): void {
    (served ? this.lookupHit : this.lookupMiss)();
  }

  /** Bytes a request moved on its connection (heads and bodies), by area. */
  wireBytes(area: string, received: number, sent: number): void {
    let c = this.wireByArea.get(area);
    if (!c) {
      c = {
        received: this.counter('floe_http_received_bytes_total', { area }),
        sent: this.counter('floe_http_sent_bytes_total', { area }),
      };
      this.wireByArea.set(area, c);
    }
    c.received(received);
    c.sent(sent);
  }

  /** A NAR upload verified and committed, whichever route it came by. */
  uploadAccepted(receivedBytes: number): void {
    this.inc('floe_uploads_total', { result: 'accepted' });
    this.inc('floe_upload_bytes_total', {}, receivedBytes);
  }

  /** A NAR upload refused; a refusal of the NAR itself (not of the caller) is also counted by its reason. */
  uploadRejected(err: unknown): void {
    this.inc('floe_uploads_total', { result: 'rejected' });
    if (err instanceof FloeError && err.code !== 'unauthenticated' && err.code !== 'forbidden')
      this.uploadVerificationFailed(err.code);
  }

  set(name: string, value: number, labels: Record<string, string> = {}): void {
    const m = this.metrics.get(name);
    if (m?.type !== 'gauge') throw new Error(`unknown gauge ${name}`);
    m.values.set(labelKey(labels), value);
  }

  observe(name: string, labels: Record<string, string>, value: number): void {
    const m = this.metrics.get(name);
    if (m?.type !== 'histogram') throw new Error(`unknown histogram ${name}`);
    this.observeKey(m, labelKey(labels), value);
  }

  private observeKey(m: Histogram, key: string, value: number): void {
    let v = m.values.get(key);
    if (!v) {
      v = { counts: new Array<number>(m.buckets.length).fill(0), sum: 0, count: 0 };
      m.values.set(key, v);
    }
    for (let i = 0; i < m.buckets.length; i++) if (value <= m.buckets[i]!) v.counts[i]!++;
    v.sum += value;
    v.count++;
  }

  /**
   * One finished HTTP request: `route` is a template (`/api/v1/orgs/:org`), never the raw path.
   * Status 499 (the client went away first) is its own class, `client_closed`: neither the server's
   * failure (5xx) nor a refusal (4xx).
   */
  request(area: string, method: string, route: string, status: number, seconds: number): void {
    // Every request lands here: its two label keys are built once per (area, method, route, status).
    const memo = `${area} ${method} ${route} ${status}`;
    let keys = this.requestKeys.get(memo);
    if (!keys) {
      const statusClass = status === CLIENT_CLOSED ? 'client_closed' : `${Math.floor(status / 100)}xx`;
      keys = {
        total: labelKey({ area, status: statusClass }),
        duration: labelKey({ method: normalMethod(method), route, status: statusClass }),
      };
      // Routes are templates, so the set is small; the bound only guards against a bug making it grow.
      if (this.requestKeys.size >= 10_000) this.requestKeys.clear();
      this.requestKeys.set(memo, keys);
    }
    const total = this.metrics.get('floe_http_requests_total') as Counter;
    total.values.set(keys.total, (total.values.get(keys.total) ?? 0) + 1);
    this.observeKey(this.metrics.get('floe_http_request_duration_seconds') as Histogram, keys.duration, seconds);
  }

  /** For the policy engine: the Authorizer's decision callback (wired in server.ts) calls this. */
  policyDecision(outcome: PolicyOutcome): void {
    this.inc('floe_policy_decisions_total', { outcome });
  }

  /** For the garbage collector: call once per run. */
  gcRun(result: GcResult, deletedBytes = 0): void {
    this.inc('floe_gc_runs_total', { result });
    if (deletedBytes > 0) this.inc('floe_gc_deleted_bytes_total', {}, deletedBytes);
  }

  uploadVerificationFailed(reason: string): void {
    this.inc('floe_upload_verification_failures_total', { reason });
  }

  /** The value of a counter summed over every label set matching `match` (for the web's usage page). */
  total(name: string, match: Record<string, string> = {}): number {
    const m = this.metrics.get(name);
    if (!m || m.type === 'histogram') return 0;
    const wanted = Object.entries(match).map(([k, v]) => `${k}="${v}"`);
    let sum = 0;
    for (const [key, v] of m.values) if (wanted.every((w) => key.split(',').includes(w))) sum += v;
    return sum;
  }

  render(): string {
    let out = '';
    for (const [name, m] of this.metrics) {
      out += `# HELP ${name} ${m.help}\n# TYPE ${name} ${m.type}\n`;
      if (m.type === 'histogram') {
        for (const [labels, v] of m.values) {
          const sep = labels ? ',' : '';
          for (let i = 0; i < m.buckets.length; i++)
            out += `${name}_bucket{${labels}${sep}le="${m.buckets[i]}"} ${v.counts[i]}\n`;
          out += `${name}_bucket{${labels}${sep}le="+Inf"} ${v.count}\n`;
          out += `${name}_sum${labels ? `{${labels}}` : ''} ${v.sum}\n`;
          out += `${name}_count${labels ? `{${labels}}` : ''} ${v.count}\n`;
        }
        continue;
      }
      if (m.values.size === 0) out += `${name} 0\n`;
      for (const [labels, v] of m.values) out += `${name}${labels ? `{${labels}}` : ''} ${v}\n`;
    }
    return out;
  }
}

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
function normalMethod(method: string): string {
  return METHODS.has(method) ? method : 'OTHER';
}

export function areaOf(pathname: string): string {
  if (pathname.startsWith('/cache')) return 'cache';
  if (pathname.startsWith('/f/')) return 'flakes';
  if (pathname.startsWith('/api/')) return 'api';
  if (pathname === '/metrics' || pathname === '/healthz' || pathname === '/readyz') return 'ops';
  return 'web';
}

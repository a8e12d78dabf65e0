/**
 * Process metrics for /metrics: memory, event-loop delay, GC time, open handles and connections.
 * Read when scraped (gauges) or accumulated by observers (GC), so they cost nothing between scrapes.
 */
import type { Server } from 'node:http';
import { type PerformanceEntry, PerformanceObserver, monitorEventLoopDelay } from 'node:perf_hooks';

export class ProcessMetrics {
  private readonly loop: ReturnType<typeof monitorEventLoopDelay> = monitorEventLoopDelay({ resolution: 20 });
  private readonly gc = new Map<string, { seconds: number; count: number }>();
  private readonly observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = gcKind((e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind);
      const g = this.gc.get(kind) ?? { seconds: 0, count: 0 };
      g.seconds += e.duration / 1000;
      g.count++;
      this.gc.set(kind, g);
    }
  });

  constructor(private readonly server: Server) {
    this.loop.enable();
    this.observer.observe({ entryTypes: ['gc'] });
  }

  stop(): void {
    this.loop.disable();
    this.observer.disconnect();
  }

  private connections(): Promise<number> {
    return new Promise((resolve) => this.server.getConnections((err, n) => resolve(err ? 0 : n)));
  }

  async render(): Promise<string> {
    const mem = process.memoryUsage();
    const ns = (v: number) => (Number.isFinite(v) ? v / 1e9 : 0);
    const lines: string[] = [];
    const gauge = (name: string, help: string, value: number | Array<[string, number]>) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
      if (typeof value === 'number') lines.push(`${name} ${value}`);
      else for (const [labels, v] of value) lines.push(`${name}{${labels}} ${v}`);
    };
    gauge('floe_process_resident_memory_bytes', 'resident set size', mem.rss);
    gauge('floe_process_heap_bytes', 'V8 heap, used and total', [
      ['state="used"', mem.heapUsed],
      ['state="total"', mem.heapTotal],
    ]);
    gauge('floe_process_external_memory_bytes', 'memory outside the V8 heap (Buffers included)', mem.external);
    gauge('floe_event_loop_delay_seconds', 'event-loop delay since the previous scrape (20 ms resolution)', [
      ['quantile="0.5"', ns(this.loop.percentile(50))],
      ['quantile="0.99"', ns(this.loop.percentile(99))],
      ['quantile="1"', ns(this.loop.max)],
    ]);
    // Delay is a window: each scrape sees what happened since the last one.
    this.loop.reset();
    lines.push(
      '# HELP floe_gc_pause_seconds_total time spent in garbage collection pauses, by kind',
      '# TYPE floe_gc_pause_seconds_total counter',
    );
    if (this.gc.size === 0) lines.push('floe_gc_pause_seconds_total 0');
    for (const [kind, g] of this.gc) lines.push(`floe_gc_pause_seconds_total{kind="${kind}"} ${g.seconds}`);
    gauge(
      'floe_process_active_handles',
      'active libuv handles and requests (sockets, timers, files)',
      process.getActiveResourcesInfo().length,
    );
    gauge('floe_http_open_connections', 'open HTTP connections', await this.connections());
    return `${lines.join('\n')}\n`;
  }
}

function gcKind(kind: number | undefined): string {
  // perf_hooks.constants.NODE_PERFORMANCE_GC_*
  switch (kind) {
    case 1:
      return 'major';
    case 2:
      return 'minor';
    case 4:
      return 'incremental';
    case 8:
      return 'weakcb';
    default:
      return 'other';
  }
}

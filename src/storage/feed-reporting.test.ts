import { describe, expect, it } from 'vitest';
import { UNANSWERED_WARNING_INTERVAL_MS, reportFeedEvents } from './feed-reporting.js';

describe('reportFeedEvents', () => {
  it('counts every unanswered notice and warns at most once a minute per replica', () => {
    const warnings: Array<{ obj: Record<string, unknown>; msg: string }> = [];
    const log = { warn: (obj: Record<string, unknown>, msg: string) => void warnings.push({ obj, msg }) };
    let counted = 0;
    let t = 1_000_000;
    const events = reportFeedEvents(
      log as never,
      (n) => (counted += n),
      () => t,
    );
    events.unanswered!(['aaaa']);
    events.unanswered!(['aaaa']);
    t += 1000;
    events.unanswered!(['aaaa', 'bbbb']);
    expect(counted).toBe(4);
    expect(warnings.map((w) => w.obj.replicas)).toEqual([['aaaa'], ['bbbb']]);
    expect(warnings[0]!.msg).toMatch(/a replica did not acknowledge a change within 500 ms/);
    t += UNANSWERED_WARNING_INTERVAL_MS;
    events.unanswered!(['aaaa', 'bbbb']);
    expect(warnings.at(-1)!.obj.replicas).toEqual(['aaaa', 'bbbb']);
    expect(warnings.at(-1)!.msg).toMatch(/2 replicas/);
  });

  it('warns of a failed connection with its message only', () => {
    const warnings: Array<{ obj: Record<string, unknown>; msg: string }> = [];
    const log = { warn: (obj: Record<string, unknown>, msg: string) => void warnings.push({ obj, msg }) };
    reportFeedEvents(log as never, () => undefined).error!(new Error('Connection terminated unexpectedly'));
    expect(warnings).toEqual([
      {
        obj: { err: { message: 'Connection terminated unexpectedly' } },
        msg: expect.stringMatching(/connection failed/),
      },
    ]);
  });
});

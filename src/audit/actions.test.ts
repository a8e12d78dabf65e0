import { describe, expect, it } from 'vitest';
import type { AuditAction } from './actions.js';
import type { AuditEvent } from './log.js';

describe('audit actions', () => {
  it('are a closed set: a misspelt action does not compile (checked by `npm run typecheck`)', () => {
    const ok: AuditAction[] = ['slice.create', 'token.create', 'cache.write', 'org.admin'];
    // @ts-expect-error -- not an audit action
    const typo: AuditAction = 'slice.creat';
    // @ts-expect-error -- an event must name one of them too
    const event: Pick<AuditEvent, 'action'> = { action: 'token.created' };
    expect([...ok, typo, event.action]).toHaveLength(6);
  });
});

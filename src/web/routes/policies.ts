import type { Hono } from 'hono';
import type { AppEnv } from '../../http/context.js';
import { hypotheticalPrincipal, hypotheticalResource } from '../../policy/hypothetical.js';
import type { Scope } from '../../identity/principal.js';
import { InvalidPolicy } from '../../org/policies.js';
import type { Org } from '../../org/service.js';
import { ACTIONS, type Action } from '../../policy/actions.js';
import { decide, type OrgPolicySet } from '../../policy/authorize.js';
import { validatePolicyFile } from '../../policy/cedar.js';
import { EXAMPLE_POLICY, type PolicyForm, type PolicyTest, policiesTab } from '../pages/governance.js';
import { managePage } from '../pages/manage.js';
import type { WebDeps, Ctx, RouteKit } from '../route-kit.js';
import { AUTH_METHODS, SCOPES, VISIBILITIES, isOneOf } from '../../wire/access.js';

/** Policies: an org's Cedar policy files (validate, apply, roll back) and the what-if test. */
export function policiesRoutes(app: Hono<AppEnv>, deps: WebDeps, kit: RouteKit): void {
  const { ctxOf, page, managedOrg, tabs } = kit;
  const defaultTest = (): PolicyTest => ({
    subject: 'ci',
    scopes: ['write'],
    authMethod: 'github',
    action: 'cache.write',
    resourceKind: 'slice',
    resourceName: 'default',
    visibility: 'private',
  });
  const policiesPage = async (c: Ctx, org: Org, form?: PolicyForm, test?: PolicyTest, status = 200) => {
    const current = await deps.policies.current(org);
    const history = await deps.policies.history(org);
    const slices = (await deps.orgs.listSlices(org)).map((s) => s.name);
    const f = form ?? { source: current?.source ?? EXAMPLE_POLICY };
    return page(
      c,
      managePage(
        await ctxOf(c),
        org.name,
        'policies',
        tabs(),
        policiesTab(await ctxOf(c), org.name, current, history, f, test ?? defaultTest(), slices),
      ),
      status,
    );
  };
  app.get('/manage/:org/policies', async (c) => {
    return policiesPage(c, managedOrg(c));
  });
  app.post('/manage/:org/policies', async (c) => {
    const org = managedOrg(c);
    const p = c.get('principal');
    const form = await c.req.parseBody();
    const source = String(form.source ?? '').replace(/\r\n/g, '\n');
    const message = String(form.message ?? '').trim() || undefined;
    if (source.length > 256 * 1024)
      return policiesPage(
        c,
        org,
        { source: '', problems: [{ message: 'at most 256 KiB of policies' }] },
        undefined,
        400,
      );
    if (form.intent === 'validate') {
      const parsed = validatePolicyFile(source, org.name);
      return policiesPage(
        c,
        org,
        {
          source,
          ...(message ? { message } : {}),
          ...(parsed.problems.length ? { problems: parsed.problems } : { validated: Object.keys(parsed.policies) }),
        },
        undefined,
        parsed.problems.length ? 400 : 200,
      );
    }
    try {
      const v = await deps.admin.governance.applyPolicies(p, org, source, message);
      return policiesPage(c, org, { source, applied: v });
    } catch (err) {
      if (!(err instanceof InvalidPolicy)) throw err;
      return policiesPage(c, org, { source, ...(message ? { message } : {}), problems: err.problems }, undefined, 400);
    }
  });
  app.post('/manage/:org/policies/rollback', async (c) => {
    const org = managedOrg(c);
    const p = c.get('principal');
    const version = Number((await c.req.parseBody()).version);
    await deps.admin.governance.rollbackPolicies(p, org, version);
    return c.redirect(`/manage/${org.name}/policies`, 303);
  });
  app.post('/manage/:org/policies/test', async (c) => {
    const org = managedOrg(c);
    const form = await c.req.parseBody({ all: true });
    const one = (k: string, fallback: string) => String(([] as unknown[]).concat(form[k] ?? fallback)[0]);
    const test: PolicyTest = {
      subject: one('subject', 'test').slice(0, 200),
      scopes: ([] as unknown[])
        .concat(form.scopes ?? [])
        .map(String)
        .filter((s) => isOneOf(SCOPES, s)),
      authMethod: isOneOf(AUTH_METHODS, one('authMethod', 'token')) ? one('authMethod', 'token') : 'token',
      action: (ACTIONS as readonly string[]).includes(one('action', 'cache.read'))
        ? one('action', 'cache.read')
        : 'cache.read',
      resourceKind: (['slice', 'flake', 'org'] as const).find((k) => k === one('resourceKind', 'slice')) ?? 'slice',
      resourceName: one('resourceName', 'default').slice(0, 100),
      visibility: isOneOf(VISIBILITIES, one('visibility', 'private')) ? one('visibility', 'private') : 'private',
    };
    if (!test.scopes.length) test.error = 'choose at least one scope';
    else {
      const orgSet: OrgPolicySet | undefined = deps.policies.forOrg(org.id);
      const slices = new Map((await deps.orgs.listSlices(org)).map((s) => [s.name, s]));
      const principal = hypotheticalPrincipal(
        { subject: test.subject, scopes: test.scopes as Scope[], authMethod: test.authMethod as 'token' },
        org,
        new Map(),
        undefined,
        0,
      );
      const resource = hypotheticalResource(
        test.resourceKind === 'slice'
          ? { slice: test.resourceName }
          : test.resourceKind === 'flake'
            ? { flake: test.resourceName, visibility: test.visibility as 'private' }
            : { org: true },
        org,
        slices,
      );
      const d = decide(principal, test.action as Action, resource, {}, orgSet);
      test.result = {
        decision: d.allowed ? 'allow' : 'deny',
        reason: d.reason,
        ...(d.decidedBy ? { decidedBy: d.decidedBy.join(', ') } : {}),
      };
    }
    return policiesPage(c, org, undefined, test);
  });
}

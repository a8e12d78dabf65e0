/**
 * The one place administration is authorized: an org's admin (optionally limited to some of its
 * slices) or the server admin. Every admin service asks it before it acts, and the HTTP route
 * groups ask it too, as middleware, for the early uniform answer (so a refused caller never gets
 * to send a body). Both ask the same Authorizer, so the two checks cannot disagree.
 */
import { Forbidden } from '../errors.js';
import type { Principal } from '../identity/principal.js';
import type { OrgResource } from '../policy/actions.js';
import type { Authorizer } from '../policy/authorize.js';
import { closestName, noSliceNamed, sliceNamesKnownTo } from '../org/names.js';
import type { Org, OrgService } from '../org/service.js';
import { NotFoundWithReason } from '../registry/service.js';

export class AdminGuard {
  constructor(
    private readonly orgs: Pick<OrgService, 'findOrg' | 'orgNames' | 'listSlices'>,
    private readonly authorizer: Pick<Authorizer, 'authorize'>,
  ) {}

  /**
   * The org named `orgName`, if the caller may administer it. `slices`: the administration
   * concerns only these slices of the org (without it, it is org-wide, which a slice-limited admin
   * token may not do: the guardrails decide). One answer for "no such org" and "not yours", except
   * to the server admin, who may know every org.
   */
  async orgAdmin(p: Principal, orgName: string, slices?: readonly string[]): Promise<Org> {
    const org = await this.orgs.findOrg(orgName);
    // A hint names only what the caller knows exists: its own token's org (anyone), or any org (the server admin).
    const ownOrgHint = () => {
      const mine = p.kind === 'token' ? closestName(orgName, [p.org.name]) : undefined;
      return mine ? ` (did you mean ${JSON.stringify(mine)}, your token's org?)` : '';
    };
    if (!org) {
      if (p.kind === 'server-admin') {
        const near = closestName(orgName, await this.orgs.orgNames());
        throw new NotFoundWithReason(
          `no org named ${JSON.stringify(orgName)}${near ? ` (did you mean ${JSON.stringify(near)}?)` : ''}`,
        );
      }
      throw new Forbidden(`not allowed to manage org ${JSON.stringify(orgName)}${ownOrgHint()}`);
    }
    const reason = this.orgAdminRefusal(p, org, slices);
    if (reason !== undefined) {
      // The reason only for the org's own tokens.
      const own = p.kind === 'token' && p.org.id === org.id;
      throw new Forbidden(`not allowed to manage org ${JSON.stringify(orgName)}${own ? `: ${reason}` : ownOrgHint()}`);
    }
    return org;
  }

  /** Refuses unless the caller may administer `org` (for services handed an org already resolved). */
  assertOrgAdmin(p: Principal, org: Pick<Org, 'id' | 'name'>, slices?: readonly string[]): void {
    const reason = this.orgAdminRefusal(p, org, slices);
    if (reason !== undefined) throw new Forbidden(`not allowed to manage org ${JSON.stringify(org.name)}: ${reason}`);
  }

  /** Whether the caller may administer `org` (no exception: for pages that show or hide things). */
  mayAdminOrg(p: Principal, org: Pick<Org, 'id' | 'name'>, slices?: readonly string[]): boolean {
    return this.orgAdminRefusal(p, org, slices) === undefined;
  }

  /**
   * The 404 for slices `org` lacks, told to a caller that may administer the org (so it may know
   * the org's slices): "no slice named X in org Y (did you mean Z?)", hints among its own slices.
   */
  async noSuchSlice(p: Principal, org: Org, wanted: readonly string[]): Promise<NotFoundWithReason> {
    return new NotFoundWithReason(await this.noSliceMessage(p, org, wanted));
  }

  /** The text of that 404, for callers that answer it as another status (an unknown slice in a body). */
  async noSliceMessage(p: Principal, org: Org, wanted: readonly string[]): Promise<string> {
    const names = (await this.orgs.listSlices(org)).map((x) => x.name);
    return noSliceNamed(org.name, wanted, sliceNamesKnownTo(p, org.id, names) ?? []);
  }

  /** Refuses unless the caller is the server admin; `what` says what needed it. */
  serverAdmin(p: Principal, what: string): void {
    const d = this.authorizer.authorize(p, 'server.admin', { type: 'server' });
    if (!d.allowed) throw new Forbidden(`${what} needs the server admin token: ${d.reason}`);
  }

  isServerAdmin(p: Principal): boolean {
    return this.authorizer.authorize(p, 'server.admin', { type: 'server' }).allowed;
  }

  /** Why the caller may not administer `org` (those `slices` of it), or undefined if it may. */
  orgAdminRefusal(p: Principal, org: Pick<Org, 'id' | 'name'>, slices?: readonly string[]): string | undefined {
    const resource: OrgResource = { type: 'org', org: { id: org.id, name: org.name } };
    const d = this.authorizer.authorize(p, 'org.admin', resource, slices ? { adminSlices: slices } : {});
    return d.allowed ? undefined : d.reason;
  }
}

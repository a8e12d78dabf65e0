/**
 * Every action the audit trail records. A closed set, so a misspelt action fails the compiler
 * and the web and the API cannot drift apart on what the same event is called: decisions of the
 * authorizer (denials) carry the policy's own actions, events carry the names below.
 */
import type { Action } from '../policy/actions.js';

export type AuditAction =
  | Action
  // sign-in and out
  | 'auth.login'
  | 'auth.logout'
  // orgs, slices, views and link sources, signing keys
  | 'org.create'
  | 'org.settings'
  | 'slice.create'
  | 'slice.update'
  | 'slice.delete'
  | 'slice.trust'
  | 'slice.untrust'
  | 'slice.global'
  | 'view.follow'
  | 'view.unfollow'
  | 'key.rotate'
  | 'key.retire'
  // credentials
  | 'token.create'
  | 'token.revoke'
  | 'trust.add'
  | 'trust.approve'
  | 'trust.remove'
  // governance
  | 'policy.apply'
  | 'policy.rollback'
  | 'signer.add'
  | 'signer.remove'
  // storage
  | 'upstream.add'
  | 'upstream.remove'
  | 'pin.add'
  | 'pin.remove'
  | 'gc.run'
  // the registry
  | 'flake.yank'
  // a denial summary past the tally's limit (`denial-tally.ts`)
  | 'various';

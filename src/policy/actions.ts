import type { Visibility } from '../wire/access.js';
/** Every action Floe authorizes. A closed set: adding one forces a decision in `decide`. */
export type Action = 'cache.read' | 'cache.write' | 'flake.read' | 'flake.publish' | 'org.admin' | 'server.admin';

export interface SliceResource {
  type: 'slice';
  org: { id: string; name: string };
  slice: { id: string; name: string; public: boolean };
}
export interface OrgResource {
  type: 'org';
  org: { id: string; name: string };
}
export interface ServerResource {
  type: 'server';
}
export interface FlakeResource {
  type: 'flake';
  org: { id: string; name: string };
  flake: { name: string; visibility: Visibility };
}
export type Resource = SliceResource | OrgResource | ServerResource | FlakeResource;

/** Every action, for schemas, listings and validation of user input. */
export const ACTIONS: readonly Action[] = [
  'cache.read',
  'cache.write',
  'flake.read',
  'flake.publish',
  'org.admin',
  'server.admin',
];

/**
 * Facts about one request that only the calling service can establish from stored data (never
 * from the client's word). They reach the guardrails and the org's policies as context.
 */
export interface RequestFacts {
  /** cache.read of a path by a deploy-only token: the path is in one of its outputs' closures. */
  inDeployClosure?: boolean;
  /** flake.read by a deploy-only token: the flake is one its grants name (to resolve the output). */
  deployFlake?: boolean;
  /** cache.write when the narinfo is known: names of the org's trusted signing keys whose signature on it verifies. */
  narinfoSignatures?: readonly string[];
  /**
   * org.admin confined to some slices of the org (their visibility, view settings, slice trusts,
   * tokens limited to them); absent = org-wide administration (policies, keys, trusts, members…).
   */
  adminSlices?: readonly string[];
}

/** The org a resource belongs to, if any: org policies only ever see their own org's resources. */
export function orgOf(resource: Resource): { id: string; name: string } | undefined {
  return resource.type === 'server' ? undefined : resource.org;
}

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
  flake: { name: string; visibility: 'public' | 'unlisted' | 'private' };
}
export type Resource = SliceResource | OrgResource | ServerResource | FlakeResource;

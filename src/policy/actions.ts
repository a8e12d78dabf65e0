/** Every action Floe authorizes. A closed set: adding one forces a decision in `decide`. */
export type Action = 'cache.read' | 'cache.write' | 'org.admin' | 'server.admin';

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
export type Resource = SliceResource | OrgResource | ServerResource;

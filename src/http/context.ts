import type { HttpBindings } from '@hono/node-server';
import type { Principal } from '../identity/principal.js';
import type { Org } from '../org/service.js';
import type { RequestStart } from './edge.js';

export interface AppEnv {
  Bindings: HttpBindings;
  Variables: {
    principal: Principal;
    requestId: string;
    edge: RequestStart;
    /** Set by the `orgAdmin` route guard (admin-guards.ts): the org the caller administers. */
    org?: Org;
  };
}

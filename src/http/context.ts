import type { HttpBindings } from '@hono/node-server';
import type { Principal } from '../identity/principal.js';
import type { RequestStart } from './edge.js';

export interface AppEnv {
  Bindings: HttpBindings;
  Variables: { principal: Principal; requestId: string; edge: RequestStart };
}

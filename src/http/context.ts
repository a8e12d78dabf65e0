import type { HttpBindings } from '@hono/node-server';
import type { Principal } from '../identity/principal.js';

export interface AppEnv {
  Bindings: HttpBindings;
  Variables: { principal: Principal; requestId: string };
}

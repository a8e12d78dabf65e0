/** The token bodies of `POST /api/v1/tokens`: what `floe token create` sends and what it is answered. */
import { z } from 'zod';
import { SCOPES } from './access.js';

export const createTokenRequest = z.object({
  org: z.string(),
  scopes: z.array(z.enum(SCOPES)).min(1),
  slices: z.array(z.string()).min(1).optional(),
  ttl: z.string().optional(),
  subject: z.string().min(1).max(200).optional(),
  description: z.string().max(500).optional(),
  /** Deploy-only device token: `org/flake/requirement#attr` outputs whose closures it may read. */
  deploy: z.array(z.string().max(500)).min(1).max(50).optional(),
  /** Network limits carried by the token itself. */
  cidrs: z.array(z.string().max(64)).max(100).optional(),
  countries: z
    .array(z.string().regex(/^[A-Za-z]{2}$/, 'an ISO 3166 two-letter country code'))
    .max(250)
    .optional(),
});
export type CreateTokenRequest = z.input<typeof createTokenRequest>;

/** The answer: the token itself is shown once, here. */
export interface MintedTokenAnswer {
  token: string;
  id: string;
  org: string;
  scopes: string[];
  slices: string[] | null;
  deploy?: string[];
  network?: { cidrs: string[]; countries: string[] };
  expiresAt: string;
}

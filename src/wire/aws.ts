/** The presigned STS GetCallerIdentity request `floe login --aws` sends to `POST /api/v1/auth/aws`. */
import { z } from 'zod';

export const signedStsRequest = z.object({
  url: z.string().max(500),
  method: z.string().max(10),
  headers: z.record(z.string(), z.string().max(4096)),
  body: z.string().max(1000),
});
export type SignedStsRequest = z.infer<typeof signedStsRequest>;

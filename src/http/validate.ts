import type { z } from 'zod';
import { InvalidInput } from '../errors.js';

/** Validates a request body; the first problem becomes a 400 naming the field. */
export function parseBody<T>(schema: z.ZodType<T>, value: unknown): T {
  const r = schema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new InvalidInput(issue.path.join('.') || 'body', issue.message);
  }
  return r.data;
}

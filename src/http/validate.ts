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

/**
 * An optional whole-number query parameter: absent or empty is undefined, anything else must be
 * digits within [min, max] (so `?limit=abc` is a 400, never a NaN that reaches SQL).
 */
export function queryInt(
  name: string,
  value: string | undefined,
  range: { min: number; max: number },
): number | undefined {
  if (value === undefined || value === '') return undefined;
  const n = /^-?\d{1,16}$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < range.min || n > range.max)
    throw new InvalidInput(name, `expected a whole number from ${range.min} to ${range.max}`);
  return n;
}

/** An optional date or time query parameter, as ISO-8601 (`new Date(bad).toISOString()` throws a RangeError: a 500). */
export function queryTime(name: string, value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined;
  const t = Date.parse(value);
  if (Number.isNaN(t)) throw new InvalidInput(name, 'expected an ISO date or time');
  return new Date(t).toISOString();
}

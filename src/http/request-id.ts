import { randomBytes } from 'node:crypto';

// Unique per process start without a random draw per request.
const PREFIX = randomBytes(4).toString('hex');
let counter = 0;

export function nextRequestId(): string {
  return `${PREFIX}-${(counter++).toString(36)}`;
}

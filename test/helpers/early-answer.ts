/**
 * A request whose answer is read even when the server answers early and closes before the whole
 * body was sent (fetch reports the client's EPIPE instead of the status the server sent).
 */
import { request } from 'node:http';

/** `declaredOnly`: send the headers (with the caller's Content-Length) and no body, and wait for the answer. */
export function sendTolerant(
  url: string,
  opts: {
    method: string;
    headers?: Record<string, string>;
    body: Buffer | string;
    timeoutMs?: number;
    declaredOnly?: boolean;
  },
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const bytes = typeof opts.body === 'string' ? Buffer.from(opts.body) : opts.body;
    const req = request(url, {
      method: opts.method,
      headers: { 'Content-Length': String(bytes.length), ...opts.headers },
      timeout: opts.timeoutMs ?? 30_000,
    });
    let answered = false;
    req.on('response', (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      const done = () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() });
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', done);
      res.on('error', done);
    });
    req.on('timeout', () => req.destroy(new Error(`${opts.method} ${url}: no answer in time`)));
    req.on('error', (err) => {
      if (!answered) setTimeout(() => (answered ? undefined : reject(err)), 200);
    });
    if (opts.declaredOnly) req.flushHeaders();
    else req.end(bytes);
  });
}

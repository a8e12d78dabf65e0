import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { infoLineWriter } from './log.js';

/** The access log's writer must produce exactly what pino writes for the same call. */
describe('infoLineWriter', () => {
  const capture = () => {
    const lines: string[] = [];
    const log = pino(
      { level: 'info', base: { service: 'floe' }, redact: { paths: ['token'], censor: 'x' } },
      { write: (l: string) => void lines.push(l) },
    );
    return { log, lines };
  };
  const fields = {
    reqId: 'ab-1',
    method: 'GET',
    path: '/cache/ä"\\\n\u0001.narinfo',
    status: 200,
    ms: 0.12,
    principal: 'token t (org acme)',
    client: undefined,
  };

  it('writes the line pino writes, byte for byte, with the logger bindings and without undefined fields', () => {
    const { log, lines } = capture();
    for (const l of [log, log.child({ worker: 3 })]) {
      l.info(fields, 'request');
      infoLineWriter(l)(fields, 'request');
    }
    const untimed = lines.map((l) => l.replace(/"time":\d+/, '"time":0'));
    expect(untimed[1]).toBe(untimed[0]);
    expect(untimed[3]).toBe(untimed[2]);
    expect(JSON.parse(lines[3]!)).toMatchObject({ worker: 3, path: fields.path, status: 200, msg: 'request' });
    expect(lines[1]).not.toContain('client');
  });
});

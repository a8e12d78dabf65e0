import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
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
  const nextTurn = () => new Promise((resolve) => setImmediate(resolve));
  const fields = {
    reqId: 'ab-1',
    method: 'GET',
    path: '/cache/ä"\\\n\u0001.narinfo',
    status: 200,
    ms: 0.12,
    principal: 'token t (org acme)',
    client: undefined,
  };

  it('writes the line pino writes, byte for byte, with the logger bindings and without undefined fields', async () => {
    const { log, lines } = capture();
    for (const l of [log, log.child({ worker: 3 })]) {
      l.info(fields, 'request');
      infoLineWriter(l)(fields, 'request');
      await nextTurn();
    }
    const untimed = lines.map((l) => l.replace(/"time":\d+/, '"time":0'));
    expect(untimed[1]).toBe(untimed[0]);
    expect(untimed[3]).toBe(untimed[2]);
    expect(JSON.parse(lines[3]!)).toMatchObject({ worker: 3, path: fields.path, status: 200, msg: 'request' });
    expect(lines[1]).not.toContain('client');
  });

  it('quotes every string exactly as JSON.stringify does', async () => {
    const { log, lines } = capture();
    const samples = ['plain /cache/x.narinfo', 'q"uote', 'back\\slash', 'tab\t', 'del\u007f', 'é', '~ !#[]'];
    for (const v of samples) {
      log.info({ v }, 'm');
      infoLineWriter(log)({ v }, 'm');
      await nextTurn();
    }
    const untimed = lines.map((l) => l.replace(/"time":\d+/, '"time":0'));
    for (let i = 0; i < samples.length; i++) expect(untimed[2 * i + 1]).toBe(untimed[2 * i]);
  });

  it('hands the lines of one turn of the event loop to the stream in one write, in order', async () => {
    const { log, lines } = capture();
    const write = infoLineWriter(log);
    for (let i = 0; i < 5; i++) write({ reqId: `r${i}`, status: 200 }, 'request');
    expect(lines).toEqual([]);
    await nextTurn();
    expect(lines).toHaveLength(1);
    const written = lines[0]!.split('\n');
    expect(written.pop()).toBe('');
    expect(written.map((l) => JSON.parse(l).reqId)).toEqual(['r0', 'r1', 'r2', 'r3', 'r4']);
    write({ reqId: 'later' }, 'request');
    await nextTurn();
    expect(lines).toHaveLength(2);
    expect(JSON.parse(lines[1]!).reqId).toBe('later');
  });

  it('writes the lines still pending when the process exits (dist build)', () => {
    const logModule = fileURLToPath(new URL('../dist/src/log.js', import.meta.url));
    const script = `const { createLogger, infoLineWriter } = await import(${JSON.stringify(logModule)});
      const write = infoLineWriter(createLogger('info'));
      write({ reqId: 'at-exit', status: 200 }, 'request');
      process.exit(0);`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(
      out
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).reqId),
    ).toEqual(['at-exit']);
  });
});

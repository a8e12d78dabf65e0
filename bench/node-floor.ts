/**
 * Node's own floor: a bare node:http server answering the same narinfos from memory (and the NAR
 * with fs.createReadStream), no authentication, logging or database; misses are 404. What is left
 * between this and Floe is Floe's own work per request, and between nginx and this, Node's.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { freePort } from '../test/helpers/server.js';

export interface NodeFloor {
  url: string;
  pid: number;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** `narinfos`: request path → narinfo text; `nar`: the NAR's request path and its bytes. */
export async function startNodeFloor(
  dir: string,
  narinfos: Map<string, string>,
  nar: { path: string; bytes: Buffer },
): Promise<NodeFloor> {
  const narFile = path.join(dir, 'floor-nar');
  writeFileSync(narFile, nar.bytes);
  const table = path.join(dir, 'floor-narinfos.json');
  writeFileSync(table, JSON.stringify(Object.fromEntries(narinfos)));
  const port = await freePort();
  const program = `
const http = require('node:http'), fs = require('node:fs');
const narinfos = new Map(Object.entries(JSON.parse(fs.readFileSync(${JSON.stringify(table)}, 'utf8'))));
const size = fs.statSync(${JSON.stringify(narFile)}).size;
http.createServer((req, res) => {
  if (req.url === ${JSON.stringify(nar.path)}) {
    res.writeHead(200, { 'Content-Type': 'application/x-nix-nar', 'Content-Length': String(size) });
    return fs.createReadStream(${JSON.stringify(narFile)}).pipe(res);
  }
  const text = narinfos.get(req.url);
  if (text === undefined) { res.writeHead(404, { 'Content-Type': 'text/plain', 'Content-Length': '10' }); return res.end('not found\\n'); }
  const body = Buffer.from(text);
  res.writeHead(200, { 'Content-Type': 'text/x-nix-narinfo', 'Content-Length': String(body.length) });
  res.end(body);
}).listen(${port}, '127.0.0.1');`;
  const child = spawn(process.execPath, ['-e', program], { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  const stop = () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    });
  for (let i = 0; i < 200; i++) {
    await new Promise((r) => setTimeout(r, 50));
    try {
      await fetch(`${url}/`);
      return { url, pid: child.pid!, child, stop };
    } catch {
      /* starting */
    }
  }
  child.kill('SIGKILL');
  throw new Error('the bare node:http server did not start');
}

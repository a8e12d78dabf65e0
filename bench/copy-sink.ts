/**
 * The floor for `nix copy --to http://…`: a binary cache server that costs nothing. It answers
 * what Nix 2.8 asks during a copy (nix-cache-info; every narinfo and NAR absent), reads every PUT
 * body to its end and throws it away. Whatever `nix copy` takes against it is Nix's own side plus
 * the loopback. Each request is logged as one JSON line on stdout (method, url, bytes, and
 * Date.now() at its start, first body byte and end; the body's chunk count; the headers), so the bench can show Nix's timeline.
 *
 * `node dist/bench/copy-sink.js` prints `listening <port>` first.
 */
import { createServer } from 'node:http';

const server = createServer((req, res) => {
  const start = Date.now();
  let first = 0;
  let bytes = 0;
  let chunks = 0;
  req.on('data', (d: Buffer) => {
    if (bytes === 0) first = Date.now();
    bytes += d.length;
    chunks++;
  });
  req.on('end', () => {
    const end = Date.now();
    process.stdout.write(
      `${JSON.stringify({ method: req.method, url: req.url, bytes, chunks, start, first, end, headers: req.headers })}\n`,
    );
    if (req.method === 'GET' && req.url?.endsWith('/nix-cache-info')) {
      res.end('StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n');
    } else if (req.method === 'PUT') {
      res.writeHead(201).end();
    } else {
      res.writeHead(404).end();
    }
  });
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as { port: number }).port}\n`);
});

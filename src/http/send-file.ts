/**
 * Sends a byte range of a local file as a response body through a few reused buffers: each is
 * filled with one positioned read and handed to the socket, and refilled only once the socket has
 * taken it (the write's callback). A read stream allocates a fresh buffer per chunk instead; at
 * 1 MiB that is fresh pages for the kernel to fault in and zero, and garbage for V8, for every
 * megabyte served.
 */
import type { ServerResponse } from 'node:http';
import { open } from 'node:fs/promises';
import { finished } from 'node:stream/promises';

const CHUNK = 1 << 20;
/** In flight at most: the next chunk is read while the socket drains the previous ones. */
const BUFFERS = 3;

/**
 * Resolves once the whole range is written; rejects if the client went away or the file could
 * not be read (the response is then destroyed: the client sees a cut body, never a short one).
 */
export async function sendFileRange(
  res: ServerResponse,
  file: { path: string; start: number; end: number },
): Promise<void> {
  const fh = await open(file.path, 'r');
  const free: Buffer[] = [];
  let allocated = 0;
  let wake: (() => void) | undefined;
  const onClose = () => wake?.();
  res.once('close', onClose);
  try {
    for (let pos = file.start; pos <= file.end; ) {
      if (res.destroyed) throw new Error('the client went away');
      let buf = free.pop();
      if (!buf && allocated < BUFFERS) {
        buf = Buffer.allocUnsafeSlow(CHUNK);
        allocated++;
      }
      if (!buf) {
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
        continue;
      }
      const { bytesRead } = await fh.read(buf, 0, Math.min(CHUNK, file.end - pos + 1), pos);
      if (bytesRead === 0) throw new Error(`the blob ended before byte ${file.end}`);
      pos += bytesRead;
      const taken = buf;
      res.write(bytesRead === CHUNK ? taken : taken.subarray(0, bytesRead), () => {
        free.push(taken);
        wake?.();
      });
    }
    res.end();
    await finished(res);
  } catch (err) {
    res.destroy();
    throw err;
  } finally {
    res.off('close', onClose);
    await fh.close();
  }
}

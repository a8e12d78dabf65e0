/**
 * The bytes of `chunk` as a buffer that can be transferred to another thread: its own when it is
 * the only view of all of it (a socket read, as the request hands it on), else a copy of just
 * these bytes (a view into a larger or pooled buffer shares it with other data).
 */
export function transferable(chunk: Buffer): Uint8Array<ArrayBuffer> {
  const whole =
    chunk.buffer instanceof ArrayBuffer && chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength;
  return whole ? new Uint8Array(chunk.buffer) : new Uint8Array(chunk);
}

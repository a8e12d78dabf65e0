declare module 'lzma-native' {
  import type { Transform } from 'node:stream';
  export function createDecompressor(options?: { memlimit?: number; threads?: number }): Transform;
  export function createCompressor(options?: { preset?: number; threads?: number }): Transform;
}
declare module 'unbzip2-stream' {
  import type { Transform } from 'node:stream';
  export default function unbzip2Stream(): Transform;
}

/**
 * The requests of Attic's `ApiClient` (zhaofengli/attic b7c905657cb81b8ec9c26b0d9f53aa2e4f231810,
 * client/src/api/mod.rs), byte for byte where it matters: `User-Agent: Attic/attic-client (unknown)`,
 * `Authorization: bearer <token>` (lower case), endpoints built with `Url::join`, the path info in
 * `X-Attic-Nar-Info` or, at 4 KiB and more (or forced), as a preamble sized by
 * `X-Attic-Nar-Info-Preamble-Size`, and the NAR streamed chunked (reqwest `Body::wrap_stream`).
 * magic-nix-cache uses this client with the raw CI JWT as the token.
 */
import { request } from 'node:http';

export const ATTIC_USER_AGENT = 'Attic/attic-client (unknown)';
const NAR_INFO_PREAMBLE_THRESHOLD = 4 * 1024;

export interface UploadPathNarInfo {
  cache: string;
  store_path_hash: string;
  store_path: string;
  references: string[];
  system: string | null;
  deriver: string | null;
  sigs: string[];
  ca: string | null;
  nar_hash: string;
  nar_size: number;
}

export interface Answer {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: answers of a foreign API, read field by field in the tests
  json: any;
  text: string;
}

export class AtticApiClient {
  constructor(
    readonly endpoint: string,
    private token: string | undefined,
  ) {}

  setToken(token: string | undefined): void {
    this.token = token;
  }

  private headers(): Record<string, string> {
    return { 'User-Agent': ATTIC_USER_AGENT, ...(this.token ? { Authorization: `bearer ${this.token}` } : {}) };
  }

  /** `endpoint.join("_api/v1/cache-config/")?.join(cache)` */
  cacheConfigUrl(cache: string): string {
    return new URL(cache, new URL('_api/v1/cache-config/', this.endpoint)).toString();
  }

  async getCacheConfig(cache: string): Promise<Answer> {
    return answer(await fetch(this.cacheConfigUrl(cache), { headers: this.headers() }));
  }

  async getMissingPaths(cache: string, storePathHashes: string[]): Promise<Answer> {
    const res = await fetch(new URL('_api/v1/get-missing-paths', this.endpoint), {
      method: 'POST',
      headers: { ...this.headers(), 'Content-Type': 'application/json' },
      body: JSON.stringify({ cache, store_path_hashes: storePathHashes }),
    });
    return answer(res);
  }

  /** Streams `nar` in `chunk`-byte pieces, as the NAR dump stream does. */
  uploadPath(info: UploadPathNarInfo, nar: Buffer, forcePreamble = false, chunk = 64 * 1024): Promise<Answer> {
    const json = JSON.stringify(info);
    const url = new URL('_api/v1/upload-path', this.endpoint);
    const headers: Record<string, string> = { ...this.headers() };
    const preamble = forcePreamble || Buffer.byteLength(json) >= NAR_INFO_PREAMBLE_THRESHOLD;
    if (preamble) headers['X-Attic-Nar-Info-Preamble-Size'] = String(Buffer.byteLength(json));
    else headers['X-Attic-Nar-Info'] = json;
    return new Promise((resolve, reject) => {
      const req = request(url, { method: 'PUT', headers }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text, json: parse(text) }));
      });
      req.on('error', reject);
      if (preamble) req.write(json);
      for (let i = 0; i < nar.length; i += chunk) req.write(nar.subarray(i, i + chunk));
      req.end();
    });
  }
}

async function answer(res: Response): Promise<Answer> {
  const text = await res.text();
  return { status: res.status, text, json: parse(text) };
}

// biome-ignore lint/suspicious/noExplicitAny: see Answer.json
function parse(text: string): any {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

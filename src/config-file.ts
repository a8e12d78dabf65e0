/**
 * The optional server configuration file (`floe serve --config floe.json`, or FLOE_CONFIG), pure.
 * Its keys are the FLOE_* variables without the prefix, in lower case (`max_nar_size` for
 * FLOE_MAX_NAR_SIZE), so one name documents both. The file only supplies values: environment
 * variables win over it and flags over both, and `loadConfig` parses and checks every value the
 * same way whatever its source.
 */
import { z } from 'zod';
import { InvalidInput } from './errors.js';

/** Every FLOE_* setting `floe serve` reads (test/ops/config.test.ts checks this against src/config.ts). */
export const SERVER_SETTINGS = [
  'FLOE_DATA_DIR',
  'FLOE_LISTEN',
  'FLOE_PUBLIC_URL',
  'FLOE_CACHE_KEY_NAME',
  'FLOE_LOG_LEVEL',
  'FLOE_CACHE_PRIORITY',
  'FLOE_DATABASE_URL',
  'FLOE_S3_BUCKET',
  'FLOE_S3_ENDPOINT',
  'FLOE_S3_REGION',
  'FLOE_S3_PREFIX',
  'FLOE_S3_FORCE_PATH_STYLE',
  'FLOE_S3_PRESIGN_SECONDS',
  'FLOE_S3_READ_DEPTH',
  'FLOE_MAX_NAR_SIZE',
  'FLOE_MAX_UPLOAD_SIZE',
  'FLOE_GC_INTERVAL',
  'FLOE_GC_GRACE',
  'FLOE_UPLOAD_EXPIRY',
  'FLOE_INGEST_SLOTS',
  'FLOE_INGEST_SLOTS_PER_ORG',
  'FLOE_INGEST_SLOTS_PER_TOKEN',
  'FLOE_VERIFY_THREADS',
  'FLOE_WORKERS',
  'FLOE_BODY_IDLE_SECONDS',
  'FLOE_BODY_MIN_RATE',
  'FLOE_MAX_CONNECTIONS_PER_CLIENT',
  'FLOE_SHUTDOWN_GRACE_SECONDS',
  'FLOE_MIN_FREE_BYTES',
  'FLOE_AUTH_RATE_LIMIT',
  'FLOE_TRUSTED_PROXIES',
  'FLOE_METRICS_PUBLIC',
  'FLOE_METRICS_TOKEN',
  'FLOE_OIDC_JWKS_COOLDOWN_MS',
  'FLOE_OIDC_ALLOW_HTTP_ISSUERS',
  'FLOE_TEST_AWS_STS_ENDPOINT',
] as const;

export const fileKey = (env: string) => env.slice('FLOE_'.length).toLowerCase();

const value = z.union([z.string(), z.number(), z.boolean(), z.array(z.string())]);
const schema = z.object(Object.fromEntries(SERVER_SETTINGS.map((e) => [fileKey(e), value.optional()]))).strict();

/**
 * Parses the file's text into FLOE_* values (arrays become comma lists: `trusted_proxies`).
 * Throws InvalidInput naming the file and the key.
 */
export function parseConfigFile(text: string, file: string): Record<string, string> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new InvalidInput(file, `not valid JSON (${(err as Error).message})`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json))
    throw new InvalidInput(file, 'expected a JSON object of settings');
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    if (issue.code === 'unrecognized_keys') {
      throw new InvalidInput(
        file,
        `unknown setting ${issue.keys.map((k) => JSON.stringify(k)).join(', ')} (settings are the FLOE_* variables in lower case without FLOE_, e.g. "listen", "max_nar_size")`,
      );
    }
    throw new InvalidInput(
      `${file}: ${issue.path.join('.')}`,
      'expected a string, a number, true/false, or a list of strings',
    );
  }
  const env: Record<string, string> = {};
  for (const name of SERVER_SETTINGS) {
    const v = (parsed.data as Record<string, z.infer<typeof value> | undefined>)[fileKey(name)];
    if (v !== undefined) env[name] = Array.isArray(v) ? v.join(',') : String(v);
  }
  return env;
}

/**
 * The variables `loadConfig` should see: the file's values under the real environment's (a
 * variable set to the empty string still wins: it is how one unsets a file's setting).
 */
export function layerEnvironment(fromFile: Record<string, string>, env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { ...fromFile, ...Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined)) };
}

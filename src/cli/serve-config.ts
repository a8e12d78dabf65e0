/** `floe serve --config FILE` and `--print-config`: the configuration file's I/O (src/config-file.ts is the pure part). */
import { readFile } from 'node:fs/promises';
import { type Config, loadConfig } from '../config.js';
import { fileKey, layerEnvironment, parseConfigFile } from '../config-file.js';
import { InvalidInput } from '../errors.js';
import { redactUrl } from '../redact.js';

export interface ServeFlags {
  dataDir?: string;
  listen?: string;
  publicUrl?: string;
  config?: string;
}

export async function serveConfig(flags: ServeFlags, env: NodeJS.ProcessEnv = process.env): Promise<Config> {
  const { config: file = env.FLOE_CONFIG || undefined, ...rest } = flags;
  if (!file) return loadConfig(rest, env);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new InvalidInput(
      '--config',
      `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  const fromFile = parseConfigFile(text, file);
  try {
    return loadConfig(rest, layerEnvironment(fromFile, env));
  } catch (err) {
    // A bad value from the file is reported by its key in the file, not as a variable nobody set.
    if (err instanceof InvalidInput && err.field in fromFile && env[err.field] === undefined) {
      throw new InvalidInput(`${file}: ${fileKey(err.field)}`, err.message.slice(err.field.length + 2));
    }
    throw err;
  }
}

/** The effective settings as JSON, secrets redacted (the database password, the metrics token; S3 credentials never reach Config). */
export function printableConfig(config: Config): string {
  const databaseUrl = config.databaseUrl
    ? redactUrl(config.databaseUrl).replace(/([?&]password=)[^&]*/gi, '$1***')
    : undefined;
  // Unset settings show as null rather than disappearing.
  const metricsToken = config.metricsToken ? '***' : undefined;
  return `${JSON.stringify({ ...config, databaseUrl, metricsToken }, (_k, v: unknown) => (v === undefined ? null : v), 2)}\n`;
}

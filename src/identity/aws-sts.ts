/**
 * AWS IAM login without AWS secrets on the server: the client presigns `sts:GetCallerIdentity`
 * with its own credentials and sends us the signed request; we send it to STS and trust the
 * answer. Strict, after aws-iam-authenticator and Teleport (and CVE-2020-16250 in Vault): STS host
 * allowlist, POST only, the body fixed to GetCallerIdentity, a header allowlist, our audience in a
 * header that must be signed, a short date window, no redirects, each signature used once.
 */
import { createHash } from 'node:crypto';
import { Unauthenticated } from '../errors.js';
import type { Db } from '../storage/types.js';
import { isUniqueViolation } from '../org/service.js';
import type { SignedStsRequest } from '../wire/aws.js';

export const AWS_STS_ISSUER = 'https://sts.amazonaws.com';
export const AUDIENCE_HEADER = 'x-floe-audience';
const BODY = 'Action=GetCallerIdentity&Version=2011-06-15';
const ALLOWED_HEADERS = new Set([
  'host',
  'content-type',
  'content-length',
  'x-amz-date',
  'x-amz-security-token',
  'x-amz-content-sha256',
  'authorization',
  AUDIENCE_HEADER,
]);
const REQUIRED_SIGNED = ['host', 'x-amz-date', AUDIENCE_HEADER];
const MAX_SKEW_MS = 5 * 60_000;
const STS_HOST = /^sts(\.[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d)?\.amazonaws\.com(\.cn)?$/;

export interface AwsIdentity {
  arn: string;
  /** Role ARN for assumed roles (the caller-chosen session name dropped), else the ARN. */
  canonicalArn: string;
  account: string;
  userId: string;
}

export function canonicalArn(arn: string): string {
  const m = /^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role\/([^/]+)\/[^/]+$/.exec(arn);
  return m ? `arn:${m[1]}:iam::${m[2]}:role/${m[3]}` : arn;
}

const refuse = (why: string) => new Unauthenticated(`AWS login refused: ${why}`);

export class StsVerifier {
  constructor(
    private readonly db: Db,
    private readonly opts: {
      audience: string;
      /** Test-only STS stand-in (an exact origin such as http://127.0.0.1:4566); never set in production. */
      endpointOverride?: string;
    },
  ) {}

  async verify(req: SignedStsRequest): Promise<AwsIdentity> {
    if (req.method !== 'POST') throw refuse('the signed request must be a POST');
    let url: URL;
    try {
      url = new URL(req.url);
    } catch {
      throw refuse('invalid STS URL');
    }
    const override = this.opts.endpointOverride ? new URL(this.opts.endpointOverride) : undefined;
    const isOverride = override !== undefined && url.origin === override.origin;
    if (!isOverride && !(url.protocol === 'https:' && url.port === '' && STS_HOST.test(url.hostname)))
      throw refuse(`${url.host} is not an AWS STS endpoint`);
    if (url.pathname !== '/' || url.search !== '' || url.username || url.password || url.hash)
      throw refuse('the STS URL must be the bare endpoint');
    if (req.body !== BODY) throw refuse('only sts:GetCallerIdentity may be signed');

    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      const lower = name.toLowerCase();
      if (!ALLOWED_HEADERS.has(lower)) throw refuse(`header ${lower} is not allowed`);
      if (typeof value !== 'string' || /[\r\n]/.test(value)) throw refuse(`header ${lower} is invalid`);
      headers[lower] = value;
    }
    if (headers.host !== url.host) throw refuse('the Host header does not match the URL');
    if (headers[AUDIENCE_HEADER] !== this.opts.audience)
      throw refuse(`the ${AUDIENCE_HEADER} header must be ${JSON.stringify(this.opts.audience)}`);
    const auth =
      /^AWS4-HMAC-SHA256 Credential=([^/,\s]+)\/(\d{8})\/([a-z0-9-]+)\/sts\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/.exec(
        headers.authorization ?? '',
      );
    if (!auth) throw refuse('the Authorization header is not an AWS SigV4 signature for STS');
    const signed = auth[4]!.split(';');
    for (const h of REQUIRED_SIGNED) if (!signed.includes(h)) throw refuse(`the ${h} header must be signed`);
    const date = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(headers['x-amz-date'] ?? '');
    if (!date) throw refuse('missing or malformed X-Amz-Date');
    const signedAt = Date.UTC(+date[1]!, +date[2]! - 1, +date[3]!, +date[4]!, +date[5]!, +date[6]!);
    if (Math.abs(Date.now() - signedAt) > MAX_SKEW_MS)
      throw refuse('the signature date is more than 5 minutes away from now (sign a fresh request)');

    try {
      await this.db
        .insertInto('used_token_ids')
        .values({
          issuer: 'aws-sts',
          token_id: createHash('sha256').update(auth[5]!).digest('hex'),
          expires_at: new Date(signedAt + 2 * MAX_SKEW_MS).toISOString(),
        })
        .execute();
    } catch (err) {
      if (isUniqueViolation(err)) throw refuse('this signed request was already used (replay); sign a fresh one');
      throw err;
    }

    let res: Response;
    try {
      res = await fetch(url, {
        method: 'POST',
        headers,
        body: BODY,
        redirect: 'manual',
        signal: AbortSignal.timeout(5_000),
      });
    } catch (err) {
      throw new Unauthenticated(`AWS login failed: STS could not be reached (${(err as Error).message})`);
    }
    const text = (await res.text()).slice(0, 64 * 1024);
    if (res.status !== 200)
      throw refuse(`STS rejected the signed request (HTTP ${res.status}); check the credentials and the clock`);
    const one = (tag: string) => {
      const all = [...text.matchAll(new RegExp(`<${tag}>([^<]*)</${tag}>`, 'g'))];
      if (all.length !== 1) throw refuse(`unexpected STS answer (${tag})`);
      return all[0]![1]!;
    };
    const arn = one('Arn');
    const account = one('Account');
    const userId = one('UserId');
    if (!/^\d{12}$/.test(account) || !arn.startsWith('arn:aws') || !arn.includes(`::${account}:`))
      throw refuse('unexpected STS answer');
    return { arn, canonicalArn: canonicalArn(arn), account, userId };
  }
}

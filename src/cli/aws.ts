/**
 * `floe login aws`: signs sts:GetCallerIdentity with whatever AWS credentials this machine has
 * (environment, profile, instance role, IRSA, ...) and sends the signed request, never the
 * credentials, to Floe. The server's audience goes in a signed header so the signature cannot be
 * replayed against another service.
 */
import { defaultProvider } from '@aws-sdk/credential-provider-node';
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';
import { CliError } from './client.js';
import type { SignedStsRequest } from '../wire/aws.js';

export async function signGetCallerIdentity(
  audience: string,
  audienceHeader: string,
  opts: { signingDate?: Date } = {},
): Promise<SignedStsRequest> {
  const region = process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION || 'us-east-1';
  const endpoint = new URL(
    process.env.AWS_ENDPOINT_URL_STS ||
      (region === 'us-east-1' ? 'https://sts.amazonaws.com' : `https://sts.${region}.amazonaws.com`),
  );
  let credentials;
  try {
    credentials = await defaultProvider()();
  } catch (err) {
    throw new CliError(
      `no AWS credentials found (${(err as Error).message}); run on a machine with an IAM role, or set AWS_PROFILE / AWS_ACCESS_KEY_ID`,
    );
  }
  const body = 'Action=GetCallerIdentity&Version=2011-06-15';
  const signer = new SignatureV4({ credentials, region, service: 'sts', sha256: Hash.bind(null, 'sha256') });
  const signed = await signer.sign(
    {
      method: 'POST',
      protocol: endpoint.protocol,
      hostname: endpoint.hostname,
      ...(endpoint.port ? { port: Number(endpoint.port) } : {}),
      path: '/',
      query: {},
      headers: {
        host: endpoint.host,
        'content-type': 'application/x-www-form-urlencoded; charset=utf-8',
        [audienceHeader]: audience,
      },
      body,
    },
    opts.signingDate ? { signingDate: opts.signingDate } : {},
  );
  return { url: `${endpoint.origin}/`, method: 'POST', headers: signed.headers as Record<string, string>, body };
}

/**
 * A stand-in for AWS STS on loopback that checks SigV4 signatures the way STS does (recomputing
 * them with the caller's secret key) and answers GetCallerIdentity in STS's XML.
 */
import { createServer, type Server } from 'node:http';
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';

export interface FakeIdentity {
  accessKeyId: string;
  secretAccessKey: string;
  arn: string;
  account: string;
  userId: string;
}

export interface FakeSts {
  endpoint: string;
  requests: number;
  stop(): Promise<void>;
}

const xmlError = (code: string, message: string) =>
  `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>${code}</Code><Message>${message}</Message></Error><RequestId>x</RequestId></ErrorResponse>`;

export async function startFakeSts(identities: FakeIdentity[]): Promise<FakeSts> {
  let requests = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      requests++;
      const body = Buffer.concat(chunks).toString();
      const reply = (status: number, xml: string) => {
        res.writeHead(status, { 'Content-Type': 'text/xml' });
        res.end(xml);
      };
      const auth =
        /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/sts\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/.exec(
          String(req.headers.authorization ?? ''),
        );
      if (req.method !== 'POST' || !auth)
        return reply(403, xmlError('MissingAuthenticationToken', 'Request is missing Authentication Token'));
      const who = identities.find((i) => i.accessKeyId === auth[1]);
      if (!who)
        return reply(403, xmlError('InvalidClientTokenId', 'The security token included in the request is invalid.'));
      const amzDate = String(req.headers['x-amz-date'] ?? '');
      const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(amzDate);
      if (!m) return reply(403, xmlError('IncompleteSignature', 'bad date'));
      const headers: Record<string, string> = {};
      for (const h of auth[4]!.split(';')) headers[h] = String(req.headers[h] ?? '');
      const signer = new SignatureV4({
        credentials: { accessKeyId: who.accessKeyId, secretAccessKey: who.secretAccessKey },
        region: auth[3]!,
        service: 'sts',
        sha256: Hash.bind(null, 'sha256'),
      });
      const host = String(req.headers.host ?? '');
      const [hostname, port] = host.split(':');
      const again = await signer.sign(
        {
          method: 'POST',
          protocol: 'http:',
          hostname: hostname!,
          ...(port ? { port: Number(port) } : {}),
          path: req.url ?? '/',
          query: {},
          headers,
          body,
        },
        { signingDate: new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!)) },
      );
      const expected = /Signature=([0-9a-f]{64})/.exec(String(again.headers.authorization))?.[1];
      if (expected !== auth[5])
        return reply(
          403,
          xmlError(
            'SignatureDoesNotMatch',
            'The request signature we calculated does not match the signature you provided.',
          ),
        );
      if (body !== 'Action=GetCallerIdentity&Version=2011-06-15')
        return reply(400, xmlError('InvalidAction', 'Could not find operation'));
      reply(
        200,
        `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>${who.arn}</Arn><UserId>${who.userId}</UserId><Account>${who.account}</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId></ResponseMetadata></GetCallerIdentityResponse>`,
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const sts: FakeSts = {
    endpoint: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    get requests() {
      return requests;
    },
    set requests(_v) {},
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  return sts;
}

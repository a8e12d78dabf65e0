/**
 * Blobs in an S3-compatible bucket. Uploads are spooled to a local temp file while they are
 * verified (the key is the NAR hash, known only at the end) and sent at commit with a multipart
 * upload; a crash before commit leaves nothing in the bucket. Reads of more than one part are
 * several ranged GetObjects in flight at once (ranged-read.ts), or, when enabled, a redirect of
 * the client to a short-lived presigned URL.
 */
import { createReadStream } from 'node:fs';
import { PRIVATE_DIR_MODE } from '../permissions.js';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { BlobInfo, BlobRead, BlobStore, BlobWriter } from '../types.js';
import { SpoolStream, createSpoolFile, dropStaleSpool, uniqueName } from './spool.js';
import { Unavailable } from '../../errors.js';
import {
  type ByteRange,
  PrefetchBudget,
  READ_BUDGET_BYTES,
  READ_DEPTH,
  READ_PART_BYTES,
  planParts,
  rangedBody,
} from './ranged-read.js';
import { isObjectStoreUnavailable } from '../failures.js';

export interface S3BlobConfig {
  /** Other processes (workers) spool into the same directory (see dropStaleSpool). */
  sharedSpool?: boolean;
  bucket: string;
  prefix: string;
  endpoint?: string;
  region: string;
  forcePathStyle: boolean;
  /** Where uploads are spooled before commit. */
  spoolDir: string;
  /** Seconds a presigned download URL stays valid; 0 = stream through Floe. */
  presignSeconds: number;
  /** Ranged GETs in flight per download (1 = one part at a time). Default READ_DEPTH. */
  readDepth?: number;
  /** Bytes per ranged GET. Default READ_PART_BYTES. */
  readPartBytes?: number;
  /** Bytes all downloads may hold ahead of their clients. Default READ_BUDGET_BYTES. */
  readBudgetBytes?: number;
}

/** An unreachable, timed-out or failing (5xx) object store is a 503 for the request that needed it. */
function unavailableOr(err: unknown): unknown {
  return isObjectStoreUnavailable(err) ? new Unavailable('blob store', { cause: err }) : err;
}

/** Fail fast when the endpoint does not answer at all (a blackholed address), instead of hanging. */
const CONNECT_TIMEOUT_MS = 5_000;

function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e?.name === 'NotFound' || e?.name === 'NoSuchKey' || e?.$metadata?.httpStatusCode === 404;
}

function isInvalidRange(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e?.name === 'InvalidRange' || e?.$metadata?.httpStatusCode === 416;
}

export class S3BlobStore implements BlobStore {
  private observe: ((operation: string) => void) | undefined;
  private readonly budget: PrefetchBudget;

  private constructor(
    private readonly client: S3Client,
    private readonly config: S3BlobConfig,
  ) {
    this.budget = new PrefetchBudget(config.readBudgetBytes ?? READ_BUDGET_BYTES);
  }

  static async open(config: S3BlobConfig): Promise<S3BlobStore> {
    const clientConfig: S3ClientConfig = {
      region: config.region,
      forcePathStyle: config.forcePathStyle,
      requestHandler: { connectionTimeout: CONNECT_TIMEOUT_MS },
    };
    if (config.endpoint) clientConfig.endpoint = config.endpoint;
    const client = new S3Client(clientConfig);
    try {
      await client.send(new HeadBucketCommand({ Bucket: config.bucket }));
    } catch (err) {
      client.destroy();
      const why = isNotFound(err) ? 'the bucket does not exist' : (err as Error).message || (err as Error).name;
      throw new Error(
        `cannot use S3 bucket ${JSON.stringify(config.bucket)}${config.endpoint ? ` at ${config.endpoint}` : ''}: ${why}. Check FLOE_S3_BUCKET, FLOE_S3_ENDPOINT and the AWS credentials.`,
        { cause: err },
      );
    }
    await mkdir(config.spoolDir, { recursive: true, mode: PRIVATE_DIR_MODE });
    await dropStaleSpool(config.spoolDir, config.sharedSpool);
    return new S3BlobStore(client, config);
  }

  private objectKey(key: string): string {
    return `${this.config.prefix}${key}`;
  }

  async begin(): Promise<BlobWriter> {
    const spool = path.join(this.config.spoolDir, `${Date.now()}-${uniqueName()}`);
    await createSpoolFile(spool);
    // Uploaded, never linked into place: no fsync (the object store's answer makes it durable).
    const stream = new SpoolStream(spool, false);
    let done = false;
    return {
      get body() {
        return stream.body;
      },
      file: spool,
      syncFile: false,
      commit: async (key: string) => {
        if (done) throw new Error('blob writer already finished');
        done = true;
        await stream.settle();
        // Whether some org already stores this content must not show in how long this takes, and
        // the stored object must never be replaced (its hash and size are in the nars row and in
        // served narinfos). So both cases make the same requests: a HEAD, a multipart upload of
        // the same bytes (to the key when it is absent, else to a scratch key) and a DELETE of the
        // scratch key (absent when the upload went to the key). Duplicates cost their bandwidth.
        const scratch = `${key}.${uniqueName()}.dup`;
        const step = async <T>(operation: string, work: () => Promise<T>): Promise<T> => {
          this.observe?.(operation);
          return work();
        };
        try {
          const exists = (await step('head', () => this.size(key))) !== undefined;
          const upload = new Upload({
            client: this.client,
            params: {
              Bucket: this.config.bucket,
              Key: this.objectKey(exists ? scratch : key),
              Body: createReadStream(spool),
              ContentType: 'application/octet-stream',
            },
            partSize: 16 * 1024 * 1024,
            queueSize: 4,
          });
          await step('upload', () => upload.done());
          await step('delete scratch', () => this.delete(scratch));
        } catch (err) {
          await this.delete(scratch).catch(() => undefined);
          throw unavailableOr(err);
        } finally {
          await rm(spool, { force: true });
        }
      },
      abort: async () => {
        done = true;
        await stream.discard();
        await rm(spool, { force: true });
      },
    };
  }

  async get(key: string, range?: { start: number; end: number }): Promise<BlobRead | undefined> {
    const partBytes = this.config.readPartBytes ?? READ_PART_BYTES;
    try {
      // The first part's answer also tells the object's size (and so how many parts follow).
      const firstEnd = (range?.start ?? 0) + partBytes - 1;
      const first = await this.getRange(key, {
        start: range?.start ?? 0,
        end: Math.min(firstEnd, range?.end ?? firstEnd),
      });
      if (!first) return undefined;
      const { body, size, etag } = first;
      if (first.whole) {
        // A store that ignores Range sent every byte: fine for a whole read, wrong for a range.
        if (range) throw new Error(`the object store ignored the Range of a read of ${key}`);
        return { body, size };
      }
      const span = { start: range?.start ?? 0, end: Math.min(range?.end ?? size - 1, size - 1) };
      const parts = planParts(span, partBytes);
      if (parts.length <= 1) return { body, size };
      const fetchRange = async (r: ByteRange, signal: AbortSignal) => {
        // Same ETag, or the part fails: the parts of one download are of one object. (Keys are
        // content addresses and objects are never replaced; a GC delete in between fails the part.)
        const part = await this.getRange(key, r, signal, etag);
        if (!part) throw new Error(`blob ${key} disappeared while it was being read`);
        return part.body;
      };
      const depth = this.config.readDepth ?? READ_DEPTH;
      return { body: rangedBody(body, parts, fetchRange, { depth, budget: this.budget }), size };
    } catch (err) {
      throw unavailableOr(err);
    }
  }

  /**
   * One GetObject (ranged when `r` is given): its body, the object's whole size and ETag, and
   * whether the body is the whole object; undefined for a missing key.
   */
  private async getRange(
    key: string,
    r?: ByteRange,
    signal?: AbortSignal,
    etag?: string,
  ): Promise<{ body: Readable; size: number; etag: string | undefined; whole: boolean } | undefined> {
    try {
      const res = await this.client.send(
        new GetObjectCommand({
          Bucket: this.config.bucket,
          Key: this.objectKey(key),
          ...(r ? { Range: `bytes=${r.start}-${r.end}` } : {}),
          ...(etag ? { IfMatch: etag } : {}),
        }),
        signal ? { abortSignal: signal } : {},
      );
      const total = /\/(\d+)$/.exec(res.ContentRange ?? '')?.[1];
      const whole = total === undefined;
      return { body: res.Body as Readable, size: Number(total ?? res.ContentLength), etag: res.ETag, whole };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      // An empty object has no byte 0 to ask for: read it whole.
      if (r && isInvalidRange(err) && r.start === 0 && !etag) return this.getRange(key);
      throw err;
    }
  }

  async size(key: string): Promise<number | undefined> {
    try {
      const res = await this.client.send(
        new HeadObjectCommand({ Bucket: this.config.bucket, Key: this.objectKey(key) }),
      );
      return Number(res.ContentLength);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw unavailableOr(err);
    }
  }

  async delete(key: string): Promise<void> {
    await this.client
      .send(new DeleteObjectCommand({ Bucket: this.config.bucket, Key: this.objectKey(key) }))
      .catch((err: unknown) => {
        throw unavailableOr(err);
      });
  }

  async *list(): AsyncIterable<BlobInfo> {
    let token: string | undefined;
    do {
      const res = await this.client
        .send(
          new ListObjectsV2Command({
            Bucket: this.config.bucket,
            Prefix: this.config.prefix,
            ...(token ? { ContinuationToken: token } : {}),
          }),
        )
        .catch((err: unknown) => {
          throw unavailableOr(err);
        });
      for (const o of res.Contents ?? []) {
        if (!o.Key) continue;
        const key = o.Key.slice(this.config.prefix.length);
        // Keys of other installations sharing the bucket under a longer prefix are not ours.
        if (key === '' || key.includes('/')) continue;
        yield { key, size: Number(o.Size ?? 0), modifiedAt: o.LastModified ? o.LastModified.getTime() : 0 };
      }
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
  }

  async redirectUrl(key: string): Promise<string | undefined> {
    if (this.config.presignSeconds <= 0) return undefined;
    return getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.config.bucket, Key: this.objectKey(key) }), {
      expiresIn: this.config.presignSeconds,
    });
  }

  /** Bytes downloads may still buffer ahead of their clients (tests: every read gives back what it took). */
  get prefetchBytesLeft(): number {
    return this.budget.left;
  }

  traceCommits(observe: ((operation: string) => void) | undefined): void {
    this.observe = observe;
  }

  close(): void {
    this.client.destroy();
  }
}

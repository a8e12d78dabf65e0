/**
 * The server's own keys, kept in the metadata database so every replica signs with the same keys:
 * an Ed25519 JWT key (tokens, published at /.well-known/jwks.json) and an Ed25519 Nix cache key
 * (narinfo signatures). Created on first start; a concurrent first start of two replicas is safe
 * because both insert the same fixed id and the loser's row is ignored.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { exportJWK, type JWK } from 'jose';
import type { Db } from '../storage/types.js';
import {
  formatPublicKey,
  formatSecretKey,
  generateSigningKey,
  parseSecretKey,
  type SigningKey,
} from '../nix/signing.js';

export interface JwtKey {
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export interface ServerKeys {
  jwt: JwtKey;
  /** Every JWT verification key, active or retired, by kid. */
  jwtVerificationKeys: Map<string, KeyObject>;
  jwks: { keys: JWK[] };
  /** The server's own Nix key: it signs nothing new, and survives as the previous key of orgs upgraded from before org keys. */
  nix: SigningKey;
}

const now = () => new Date().toISOString();

/**
 * Rotates the token signing key: a new key signs from now on; older keys stay published and keep
 * verifying the tokens they signed, so nobody is logged out. Other replicas pick the new key up
 * when they meet its kid, and within a minute in any case (see KeyRing).
 */
export async function rotateJwtKey(db: Db): Promise<string> {
  return db.transaction().execute(async (trx) => {
    const rows = await trx.selectFrom('server_keys').select('id').where('purpose', '=', 'jwt').execute();
    const next = Math.max(0, ...rows.map((r) => Number(/^jwt-(\d+)$/.exec(r.id)?.[1] ?? 0))) + 1;
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    await trx.updateTable('server_keys').set({ active: 0 }).where('purpose', '=', 'jwt').execute();
    await trx
      .insertInto('server_keys')
      .values({
        id: `jwt-${next}`,
        purpose: 'jwt',
        name: `jwt-${next}`,
        secret: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
        public: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
        active: 1,
        created_at: now(),
      })
      .execute();
    return `jwt-${next}`;
  });
}

/** The current keys, reloadable: rotation on any replica reaches the others. */
export class KeyRing {
  private lastReload = 0;
  private reloading: Promise<void> | undefined;

  constructor(
    private readonly db: Db,
    private readonly opts: { nixKeyName: string },
    public current: ServerKeys,
  ) {}

  static async open(db: Db, opts: { nixKeyName: string }): Promise<KeyRing> {
    return new KeyRing(db, opts, await loadOrCreateServerKeys(db, opts));
  }

  /** Reloads unless done in the last `minIntervalMs` (an unknown kid must not cause a reload storm). */
  async reload(minIntervalMs = 1_000): Promise<void> {
    if (Date.now() - this.lastReload < minIntervalMs) return this.reloading;
    this.lastReload = Date.now();
    this.reloading = loadOrCreateServerKeys(this.db, this.opts).then((k) => {
      this.current = k;
    });
    return this.reloading;
  }
}

export async function loadOrCreateServerKeys(db: Db, opts: { nixKeyName: string }): Promise<ServerKeys> {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const nixKey = generateSigningKey(opts.nixKeyName);
  await db
    .insertInto('server_keys')
    .values([
      {
        id: 'jwt-1',
        purpose: 'jwt',
        name: 'jwt-1',
        secret: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
        public: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
        active: 1,
        created_at: now(),
      },
      {
        id: 'nix-1',
        purpose: 'nix',
        name: nixKey.name,
        secret: formatSecretKey(nixKey),
        public: formatPublicKey(nixKey),
        active: 1,
        created_at: now(),
      },
    ])
    .onConflict((oc) => oc.column('id').doNothing())
    .execute();

  const rows = await db.selectFrom('server_keys').selectAll().orderBy('created_at', 'desc').execute();
  const jwtRows = rows.filter((r) => r.purpose === 'jwt');
  const activeJwt = jwtRows.find((r) => r.active === 1);
  const activeNix = rows.find((r) => r.purpose === 'nix' && r.active === 1);
  if (!activeJwt || !activeNix) throw new Error('server keys are missing from the database: no active jwt or nix key');

  const jwtVerificationKeys = new Map<string, KeyObject>();
  const jwks: JWK[] = [];
  for (const row of jwtRows) {
    const key = createPublicKey(row.public);
    jwtVerificationKeys.set(row.id, key);
    jwks.push({ ...(await exportJWK(key)), kid: row.id, alg: 'EdDSA', use: 'sig' });
  }
  const nix = parseSecretKey(activeNix.secret);
  return {
    jwt: {
      kid: activeJwt.id,
      privateKey: createPrivateKey(activeJwt.secret),
      publicKey: createPublicKey(activeJwt.public),
    },
    jwtVerificationKeys,
    jwks: { keys: jwks },
    nix,
  };
}

import type { Hono } from 'hono';
import { parseDuration, parseSize } from '../../units.js';
import { NotFound, isClientError } from '../../errors.js';
import type { AppEnv } from '../../http/context.js';
import { parseStorePath, parseStorePathBase } from '../../nix/store-path.js';
import { type Org, parseName } from '../../org/service.js';
import { managePage } from '../pages/manage.js';
import { type PinForm, type StorageForms, storageTab } from '../pages/storage.js';
import type { WebDeps, Ctx, RouteKit } from '../route-kit.js';

/** Storage: usage, quota (server admin), retention and pins (org admins). */
export function storageRoutes(app: Hono<AppEnv>, deps: WebDeps, kit: RouteKit): void {
  const { ctxOf, page, managedOrg, tabs } = kit;
  // The same service calls, authorization and audit entries as routes/storage.ts.
  const storagePage = async (c: Ctx, org: Org, forms: StorageForms = {}, status = 200) => {
    const ctx = await ctxOf(c);
    const usage = await deps.usage.storage(org);
    const pins = await deps.retention.listPins(org);
    return page(
      c,
      managePage(
        ctx,
        org.name,
        'storage',
        tabs(),
        storageTab(ctx, org.name, usage, pins, {
          canSetQuota: deps.admin.guard.isServerAdmin(c.get('principal')),
          forms,
        }),
      ),
      status,
    );
  };
  const formError = (err: unknown): string => {
    if (!isClientError(err)) throw err;
    return err.message;
  };
  app.get('/manage/:org/storage', async (c) => {
    const org = managedOrg(c);
    const done = c.req.query('done');
    return storagePage(c, org, done ? { done } : {});
  });
  app.post('/manage/:org/storage/pins', async (c) => {
    const org = managedOrg(c);
    const form = await c.req.parseBody();
    const pin: PinForm = {
      name: String(form.name ?? '').trim(),
      storePath: String(form.storePath ?? '').trim(),
      ttl: String(form.ttl ?? '').trim(),
    };
    let error: PinForm['error'];
    const check = <T>(field: NonNullable<PinForm['error']>['field'], f: () => T): T | undefined => {
      try {
        return f();
      } catch (err) {
        error ??= { field, message: formError(err) };
        return undefined;
      }
    };
    check('name', () => parseName('pin', pin.name));
    const storePath = check('storePath', () =>
      pin.storePath.startsWith('/') ? parseStorePath(pin.storePath) : parseStorePathBase(pin.storePath),
    );
    const ttlSeconds = pin.ttl ? check('ttl', () => parseDuration(pin.ttl, 'expires after')) : undefined;
    if (!error && storePath) {
      // Refused when no slice of the org holds the path.
      await deps.admin.storage
        .pin(c.get('principal'), org, {
          name: pin.name,
          storePath,
          ...(ttlSeconds ? { ttlSeconds, ttl: pin.ttl } : {}),
        })
        .catch((err: unknown) => {
          error = { field: 'storePath', message: formError(err) };
        });
    }
    if (error || !storePath) return storagePage(c, org, { pin: { ...pin, ...(error ? { error } : {}) } }, 400);
    return c.redirect(`/manage/${org.name}/storage?done=pin-added`, 303);
  });
  app.post('/manage/:org/storage/pins/:name/remove', async (c) => {
    const org = managedOrg(c);
    const name = c.req.param('name');
    const removed = await deps.admin.storage.unpin(c.get('principal'), org, name).then(
      () => true,
      (err: unknown) => {
        if (err instanceof NotFound) return false;
        throw err;
      },
    );
    return c.redirect(`/manage/${org.name}/storage${removed ? '?done=pin-removed' : ''}`, 303);
  });
  app.post('/manage/:org/storage/retention', async (c) => {
    const org = managedOrg(c);
    const form = await c.req.parseBody();
    const retention = {
      mode: form.mode === 'forever' ? ('forever' as const) : ('window' as const),
      value: String(form.retention ?? '').trim(),
    };
    let retentionSeconds: number | null;
    try {
      retentionSeconds = retention.mode === 'forever' ? null : parseDuration(retention.value, 'retention');
    } catch (err) {
      return storagePage(c, org, { retention: { ...retention, error: formError(err) } }, 400);
    }
    await deps.admin.storage.updateSettings(c.get('principal'), org, { retention: retentionSeconds });
    return c.redirect(`/manage/${org.name}/storage?done=retention`, 303);
  });
  app.post('/manage/:org/storage/quota', async (c) => {
    const org = managedOrg(c);
    const p = c.get('principal');
    // Org admins choose how long their pushes stay; only the server admin hands out storage
    // (refused before the form is read, as the service would).
    deps.admin.guard.serverAdmin(p, 'setting a quota');
    const value = String((await c.req.parseBody()).quota ?? '').trim();
    let quotaBytes: number | null;
    try {
      quotaBytes = value === '' || value.toLowerCase() === 'none' ? null : parseSize(value, 'quota');
    } catch (err) {
      return storagePage(c, org, { quota: { value, error: formError(err) } }, 400);
    }
    await deps.admin.storage.updateSettings(p, org, { quota: quotaBytes });
    return c.redirect(`/manage/${org.name}/storage?done=quota`, 303);
  });
}

import { describe, expect, it } from 'vitest';
import { ReadCache } from './read-cache.js';

describe('ReadCache absences', () => {
  it('keeps found rows always, absences only under a current epoch', async () => {
    let epoch: number | undefined;
    const cache = new ReadCache<string[]>(60_000, 100, () => epoch);
    let loads = 0;
    const load = (v: string[]) => async () => {
      loads++;
      return v;
    };
    await cache.get('h', '*', load([]));
    await cache.get('h', '*', load([]));
    expect(loads).toBe(2); // no epoch: the miss is not kept

    epoch = 1;
    await cache.get('h', '*', load([]));
    await cache.get('h', '*', load(['row']));
    expect(loads).toBe(3); // kept under epoch 1

    epoch = undefined; // the feed lost its connection: the absence is not served
    expect(await cache.get('h', '*', load(['row']))).toEqual(['row']);
    expect(loads).toBe(4);
    epoch = 2;
    expect(await cache.get('h', '*', load(['other']))).toEqual(['row']); // found rows stay
  });

  it('serves no absence from before a reconnect (a new epoch)', async () => {
    let epoch: number | undefined = 1;
    const cache = new ReadCache<string[]>(60_000, 100, () => epoch);
    await cache.get('h', '*', async () => []);
    epoch = 2;
    expect(await cache.get('h', '*', async () => ['row'])).toEqual(['row']);
  });

  it('keeps no absence whose load spanned a change of epoch', async () => {
    let epoch: number | undefined = 1;
    const cache = new ReadCache<string[]>(60_000, 100, () => epoch);
    await cache.get('h', '*', async () => {
      epoch = undefined;
      await Promise.resolve();
      epoch = 2;
      return [];
    });
    let loaded = false;
    await cache.get('h', '*', async () => {
      loaded = true;
      return [];
    });
    expect(loaded).toBe(true);
  });

  it('keeps nothing loaded across an invalidation of its group', async () => {
    const cache = new ReadCache<string[]>(60_000, 100, () => 0);
    await cache.get('h', '*', async () => {
      cache.invalidate('h');
      return [];
    });
    let loaded = false;
    await cache.get('h', '*', async () => {
      loaded = true;
      return ['row'];
    });
    expect(loaded).toBe(true);
  });
});

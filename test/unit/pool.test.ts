import { runPool } from '../../workflows/pool.js';

describe('runPool', () => {
  it('keeps results in input order and never exceeds the limit', async () => {
    let inFlight = 0;
    let peak = 0;
    const work = async (n: number): Promise<number> => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      await new Promise((r) => setTimeout(r, (5 - n) * 3));
      inFlight--;
      return n * 10;
    };

    const results = await runPool([1, 2, 3, 4, 5], 2, work);

    expect(results).toEqual([10, 20, 30, 40, 50]);
    expect(peak).toBe(2);
  });

  it('returns an empty list for no items', async () => {
    expect(await runPool([], 3, () => Promise.resolve(1))).toEqual([]);
  });
});

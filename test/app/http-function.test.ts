import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import type { RunsApiDeps } from '../../lib/api/runs.ts';
import { makeHandler } from '../../lib/app/runs-api.ts';
import { loadOnce } from '../../lib/common/load-once.ts';
import type { RunStore } from '../../lib/engine/ports.ts';

/** A /health request as API Gateway sends it. */
const health = {
  version: '2.0',
  routeKey: 'GET /health',
  rawPath: '/health',
  rawQueryString: '',
  headers: {},
  requestContext: { http: { method: 'GET', path: '/health', sourceIp: '127.0.0.1' }, requestId: 'r1' },
  isBase64Encoded: false,
} as unknown as APIGatewayProxyEventV2;

/** Only what /health reads. */
const store = { kvGet: async () => undefined } as unknown as RunStore;

describe('the memoised initialiser of a function', () => {
  it('retries a failed build on the next request instead of failing for the container’s life', async () => {
    let builds = 0;
    const handler = makeHandler((): RunsApiDeps => {
      builds++;
      if (builds === 1) throw new Error('TABLE_NAME is not set');
      return { store, version: 'test' };
    });

    await expect(handler(health)).rejects.toThrow('TABLE_NAME is not set');
    const second = await handler(health);
    const third = await handler(health);

    expect(second.statusCode).toBe(200);
    expect(third.statusCode).toBe(200);
    expect(builds).toBe(2);
  });

  it('builds once for concurrent first requests', async () => {
    let builds = 0;
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const handler = makeHandler(async (): Promise<RunsApiDeps> => {
      builds++;
      await gate;
      return { store, version: 'test' };
    });

    const pending = Promise.all([handler(health), handler(health), handler(health)]);
    release();
    const answers = await pending;

    expect(answers.map((a) => a.statusCode)).toEqual([200, 200, 200]);
    expect(builds).toBe(1);
  });

  it('forgets a rejected load, including one that throws before its first await', async () => {
    let calls = 0;
    const load = loadOnce((): number => {
      calls++;
      if (calls === 1) throw new Error('first');
      return calls;
    });

    await expect(load()).rejects.toThrow('first');
    expect(await load()).toBe(2);
    expect(await load()).toBe(2);
  });
});

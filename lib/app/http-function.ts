import { loadOnce } from '../common/load-once.ts';
import { apiGateway, type LambdaHttpHandler } from '../http/apigw.ts';
import type { Endpoint } from '../http/request.ts';

/** Dependencies given as they are, or built on first use (so importing a module needs no environment). */
export type DepsOrLoader<D> = D | (() => D | Promise<D>);

/**
 * An endpoint behind API Gateway, built on the first request by the one memoised initialiser
 * (lib/common/load-once.ts): concurrent first requests share one build, and a failed build is
 * retried on the next request. The local stack serves these same handlers (lib/app/local-routes.ts).
 */
export function endpointHandler<D>(
  deps: DepsOrLoader<D>,
  build: (deps: D) => Endpoint | Promise<Endpoint>,
): LambdaHttpHandler {
  const endpoint = loadOnce(async () =>
    build(typeof deps === 'function' ? await (deps as () => D | Promise<D>)() : deps),
  );
  return apiGateway(async (req) => (await endpoint())(req));
}

import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { HttpEvent, HttpResult, LambdaHttpHandler } from './apigw.ts';
import { json, MAX_BODY_BYTES } from './request.ts';

export interface Route {
  method: string;
  /** API Gateway route pattern, e.g. `/runs/{id}`. */
  path: string;
  handler: LambdaHttpHandler;
}

const TEXT_TYPES = /^(application\/(json|x-www-form-urlencoded)|text\/)/i;

function matchRoute(routes: Route[], method: string, path: string) {
  for (const r of routes) {
    if (r.method !== method && r.method !== 'ANY') continue;
    const names: string[] = [];
    const re = new RegExp(
      `^${r.path.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\\?\{(\w+)\\?\}/g, (_m, n: string) => {
        names.push(n);
        return '([^/]+)';
      })}$`,
    );
    const m = re.exec(path);
    if (m) {
      const params: Record<string, string> = {};
      names.forEach((n, i) => {
        params[n] = decodeURIComponent(m[i + 1] ?? '');
      });
      return { route: r, params };
    }
  }
  return undefined;
}

/**
 * Build the API Gateway HTTP API (payload 2.0) event that AWS would send for this request:
 * lowercase header names, cookies split out, query parameters joined, and a body that is
 * base64-encoded unless it is text, as API Gateway does.
 */
export function toHttpEvent(
  req: Pick<IncomingMessage, 'method' | 'url' | 'headers' | 'socket'>,
  body: Buffer,
  routeKey: string,
  pathParameters: Record<string, string> | undefined,
  now = new Date(),
): HttpEvent {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const headers: Record<string, string> = {};
  let cookies: string[] | undefined;
  for (const [k, v] of Object.entries(req.headers)) {
    if (v === undefined) continue;
    const name = k.toLowerCase();
    if (name === 'cookie') {
      cookies = (Array.isArray(v) ? v.join('; ') : v).split(/;\s*/);
      continue;
    }
    headers[name] = Array.isArray(v) ? v.join(',') : v;
  }
  const query: Record<string, string> = {};
  for (const [k, v] of url.searchParams) query[k] = query[k] === undefined ? v : `${query[k]},${v}`;
  const isText = TEXT_TYPES.test(headers['content-type'] ?? '');
  const method = (req.method ?? 'GET').toUpperCase();
  return {
    version: '2.0',
    routeKey,
    rawPath: url.pathname,
    rawQueryString: url.search.slice(1),
    ...(cookies ? { cookies } : {}),
    headers,
    ...(Object.keys(query).length > 0 ? { queryStringParameters: query } : {}),
    ...(pathParameters && Object.keys(pathParameters).length > 0 ? { pathParameters } : {}),
    requestContext: {
      accountId: 'local',
      apiId: 'local',
      domainName: headers.host ?? 'localhost',
      domainPrefix: 'local',
      http: {
        method,
        path: url.pathname,
        protocol: 'HTTP/1.1',
        sourceIp: req.socket?.remoteAddress ?? '127.0.0.1',
        userAgent: headers['user-agent'] ?? '',
      },
      requestId: randomUUID(),
      routeKey,
      stage: '$default',
      time: now.toUTCString(),
      timeEpoch: now.getTime(),
    },
    ...(body.length > 0 ? { body: isText ? body.toString('utf8') : body.toString('base64') } : {}),
    isBase64Encoded: body.length > 0 && !isText,
  };
}

/** A node:http request listener that serves `routes` like API Gateway would. */
export function httpListener(routes: Route[], onError: (err: unknown) => void = () => {}) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = [];
    let kept = 0;
    req.on('data', (c: Buffer) => {
      // API Gateway's payload limit is larger than ours. Keep the first MAX_BODY_BYTES + 1 bytes:
      // one byte over is all a handler needs to answer 413, however the body was chunked.
      const room = MAX_BODY_BYTES + 1 - kept;
      if (room <= 0) return;
      const part = c.length > room ? c.subarray(0, room) : c;
      chunks.push(part);
      kept += part.length;
    });
    req.on('end', () => {
      void (async () => {
        const url = new URL(req.url ?? '/', 'http://localhost');
        const method = (req.method ?? 'GET').toUpperCase();
        const found = matchRoute(routes, method, url.pathname);
        if (!found) {
          const pathKnown = routes.some((r) => matchRoute([{ ...r, method: 'ANY' }], method, url.pathname));
          write(res, json(pathKnown ? 405 : 404, { error: pathKnown ? 'method not allowed' : 'not found' }));
          return;
        }
        const event = toHttpEvent(
          req,
          Buffer.concat(chunks),
          `${found.route.method} ${found.route.path}`,
          found.params,
        );
        try {
          write(res, await found.route.handler(event));
        } catch (err) {
          onError(err);
          write(res, json(500, { error: 'internal error' }));
        }
      })();
    });
  };
}

function write(res: ServerResponse, result: HttpResult): void {
  const body = result.body ?? '';
  res.writeHead(result.statusCode ?? 200, { ...(result.headers as Record<string, string> | undefined) });
  res.end(result.isBase64Encoded ? Buffer.from(body, 'base64') : body);
}

import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { type Endpoint, type HttpRequest, type HttpResponse, toRequest } from './request.ts';

export type HttpEvent = APIGatewayProxyEventV2;
export type HttpResult = APIGatewayProxyStructuredResultV2;
export type LambdaHttpHandler = (event: HttpEvent) => Promise<HttpResult>;

/** The API Gateway HTTP API (payload 2.0) event, converted once. */
export function fromApiGateway(event: HttpEvent): HttpRequest {
  const http = event.requestContext?.http;
  return toRequest({
    method: http?.method ?? 'GET',
    path: event.rawPath ?? http?.path ?? '/',
    headers: event.headers,
    query: event.queryStringParameters,
    params: event.pathParameters,
    cookies: event.cookies,
    body: event.body,
    isBase64Encoded: event.isBase64Encoded,
    ...(http?.sourceIp !== undefined ? { sourceIp: http.sourceIp } : {}),
    ...(event.requestContext?.requestId !== undefined ? { requestId: event.requestContext.requestId } : {}),
  });
}

/** The response, as API Gateway expects it back. */
export function toApiGateway(res: HttpResponse): HttpResult {
  return {
    statusCode: res.statusCode,
    headers: res.headers,
    body: res.body,
    ...(res.isBase64Encoded ? { isBase64Encoded: true } : {}),
  };
}

/** An endpoint behind API Gateway (and behind the local stack, which plays API Gateway). */
export function apiGateway(endpoint: Endpoint): LambdaHttpHandler {
  return async (event) => toApiGateway(await endpoint(fromApiGateway(event)));
}

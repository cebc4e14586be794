import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { header as headerOf } from './headers.ts';

export type HttpEvent = APIGatewayProxyEventV2;
export type HttpResult = APIGatewayProxyStructuredResultV2;

/** 1 MiB: larger bodies get 413 (ARCHITECTURE.md §1). */
export const MAX_BODY_BYTES = 1024 * 1024;

export function json(statusCode: number, body: unknown, headers: Record<string, string> = {}): HttpResult {
  return {
    statusCode,
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  };
}

export function problem(statusCode: number, error: string, detail?: string): HttpResult {
  return json(statusCode, { error, ...(detail ? { detail } : {}) });
}

/** The raw body bytes (API Gateway may base64-encode them). */
export function rawBody(event: Pick<HttpEvent, 'body' | 'isBase64Encoded'>): Buffer {
  if (event.body === undefined || event.body === null) return Buffer.alloc(0);
  return event.isBase64Encoded ? Buffer.from(event.body, 'base64') : Buffer.from(event.body, 'utf8');
}

/** A header of the event (case-insensitive; see headers.ts). */
export function header(event: Pick<HttpEvent, 'headers'>, name: string): string | undefined {
  return headerOf(event.headers, name);
}

import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { LoopbackServer } from './loopback.ts';

/** One Invoke request as the fake received it. */
export interface InvokeRequest {
  functionName: string;
  /** `X-Amz-Invocation-Type`: `Event` for an asynchronous invocation. */
  invocationType: string | undefined;
  headers: Record<string, string | string[] | undefined>;
  payload: string;
}

/** Lambda's answer to a refused invocation: HTTP status, error type and message. */
export interface InvokeRefusal {
  status: number;
  type: string;
  message: string;
}

const MAX_ASYNC_PAYLOAD_BYTES = 256 * 1024;
const INVOKE_PATH = /^\/2015-03-31\/functions\/([^/]+)\/invocations$/;

/**
 * Lambda's Invoke API played on loopback, in the REST-JSON protocol the AWS SDK v3 uses:
 * `POST /2015-03-31/functions/{name}/invocations`, the payload as the body. An asynchronous
 * invocation (`Event`) of a known function is answered 202 with no body and recorded in `invoked`;
 * errors carry `x-amzn-errortype` as Lambda's do. `refuse` decides, per request, a refusal
 * (a throttle: 429 TooManyRequestsException).
 */
export class FakeLambda extends LoopbackServer {
  readonly requests: InvokeRequest[] = [];
  /** The asynchronous invocations Lambda took. */
  readonly invoked: InvokeRequest[] = [];
  refuse: (request: InvokeRequest, call: number) => InvokeRefusal | undefined = () => undefined;
  private readonly functions = new Set<string>();

  /** A function that exists, by name. */
  createFunction(name: string): string {
    this.functions.add(name);
    return name;
  }

  reset(): void {
    this.requests.length = 0;
    this.invoked.length = 0;
    this.refuse = () => undefined;
  }

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const raw = await this.bodyOf(req);
    const path = INVOKE_PATH.exec(new URL(req.url ?? '/', this.url).pathname);
    if (req.method !== 'POST' || !path) {
      return this.error(res, { status: 404, type: 'UnknownOperationException', message: 'not Invoke' });
    }
    const invocationType = req.headers['x-amz-invocation-type'] as string | undefined;
    const request: InvokeRequest = {
      functionName: decodeURIComponent(path[1]!),
      invocationType,
      headers: { ...req.headers },
      payload: raw.toString('utf8'),
    };
    this.requests.push(request);
    if (!this.functions.has(request.functionName)) {
      return this.error(res, {
        status: 404,
        type: 'ResourceNotFoundException',
        message: `Function not found: ${request.functionName}`,
      });
    }
    if (invocationType !== 'Event') {
      return this.error(res, {
        status: 400,
        type: 'InvalidParameterValueException',
        message: 'only Event is played',
      });
    }
    if (raw.length > MAX_ASYNC_PAYLOAD_BYTES) {
      return this.error(res, {
        status: 413,
        type: 'RequestTooLargeException',
        message: `Request must be smaller than ${MAX_ASYNC_PAYLOAD_BYTES} bytes for the InvokeAsync operation`,
      });
    }
    const refusal = this.refuse(request, this.requests.length - 1);
    if (refusal) return this.error(res, refusal);
    this.invoked.push(request);
    res.writeHead(202, { 'x-amzn-requestid': randomUUID() });
    res.end();
  }

  private error(res: ServerResponse, refusal: InvokeRefusal): void {
    res.writeHead(refusal.status, {
      'content-type': 'application/json',
      'x-amzn-requestid': randomUUID(),
      'x-amzn-errortype': `${refusal.type}:`,
    });
    res.end(JSON.stringify({ Type: 'User', message: refusal.message }));
  }
}

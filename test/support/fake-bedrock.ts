import { readFileSync } from 'node:fs';
import {
  createServer,
  type Http2Server,
  type Http2ServerRequest,
  type Http2ServerResponse,
} from 'node:http2';
import { join } from 'node:path';
import { Scripts } from './scripted.ts';

/**
 * Amazon Bedrock's Converse API played on loopback: `POST /model/{modelId}/converse`, with the
 * request and response shapes of the AWS docs (toolUse content blocks, stopReason, usage), and
 * AWS JSON errors (`x-amzn-errortype` + `{message}`), over HTTP/2 (cleartext) as the SDK's
 * default handler for this service speaks it. Point the SDK at it with
 * `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`. Records every request.
 *
 * Answers come from the recorded fixtures in test/fixtures/bedrock/issues.json: the fixture whose
 * issue title appears in the prompt answers. `script` overrides that (errors, other answers).
 */

export interface ConverseRequest {
  path: string;
  modelId: string;
  headers: Record<string, string | string[] | undefined>;
  body: {
    messages: Array<{ role: string; content: Array<{ text?: string }> }>;
    system?: Array<{ text?: string }>;
    inferenceConfig?: { maxTokens?: number; temperature?: number };
    toolConfig?: {
      tools: Array<{ toolSpec: { name: string; description?: string; inputSchema: { json: unknown } } }>;
      toolChoice?: unknown;
    };
  };
  /** The user message's text (the prompt). */
  prompt: string;
}

export interface RecordedAnswer {
  /** The input of the `submit_plan` call (absent: a text answer without a tool call). */
  toolInput?: unknown;
  text?: string;
  stopReason?: string;
  usage: { inputTokens: number; outputTokens: number };
}

export interface IssueFixture {
  name: string;
  issue: { title: string; body: string; labels: string[]; comments?: Array<{ user: string; body: string }> };
  answer: RecordedAnswer;
  expect: {
    tasks: number;
    agents: string[];
    adjustments?: string[];
    files?: string[];
  };
}

export const ISSUE_FIXTURES: IssueFixture[] = JSON.parse(
  readFileSync(join(import.meta.dirname, '..', 'fixtures', 'bedrock', 'issues.json'), 'utf8'),
) as IssueFixture[];

/** A Converse response body, as Bedrock sends it. */
export function converseResponse(answer: RecordedAnswer, n = 1): Record<string, unknown> {
  const content: unknown[] = [];
  if (answer.text) content.push({ text: answer.text });
  if (answer.toolInput !== undefined)
    content.push({
      toolUse: {
        toolUseId: `tooluse_${n.toString(36).padStart(8, '0')}`,
        name: 'submit_plan',
        input: answer.toolInput,
      },
    });
  return {
    output: { message: { role: 'assistant', content } },
    stopReason: answer.stopReason ?? (answer.toolInput !== undefined ? 'tool_use' : 'end_turn'),
    usage: {
      inputTokens: answer.usage.inputTokens,
      outputTokens: answer.usage.outputTokens,
      totalTokens: answer.usage.inputTokens + answer.usage.outputTokens,
    },
    metrics: { latencyMs: 812 },
  };
}

/** An AWS JSON error response. */
export function awsError(status: number, type: string, message: string) {
  return { status, headers: { 'x-amzn-errortype': type }, body: { message } };
}

export class FakeBedrock {
  readonly requests: ConverseRequest[] = [];
  private readonly scripts = new Scripts();
  private server: Http2Server | undefined;
  private readonly sessions = new Set<import('node:http2').Http2Session>();
  private waiters: Array<{ n: number; resolve: () => void }> = [];
  url = '';

  constructor(readonly fixtures: IssueFixture[] = ISSUE_FIXTURES) {}

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      void this.handle(req, res);
    });
    this.server.on('session', (s) => {
      this.sessions.add(s);
      s.on('close', () => this.sessions.delete(s));
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    const addr = this.server.address();
    this.url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
    return this;
  }

  async stop(): Promise<void> {
    // HTTP/2 sessions stay open between requests: close them, or close() waits for the client.
    for (const s of this.sessions) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  /** Answer the next `times` requests with `response` (an error or a Converse body). */
  script(response: {
    status: number;
    body?: unknown;
    headers?: Record<string, string>;
    times?: number;
  }): void {
    this.scripts.add('POST', /\/converse$/, response, true);
  }

  reset(): void {
    this.scripts.clear();
    this.requests.length = 0;
    this.hanging = 0;
    this.cancelled = 0;
    this.holds = [];
  }

  /** Requests still to leave unanswered (they hang until the client gives up). */
  private hanging = 0;
  /** Hung requests the client cancelled (the stream closed before any answer). */
  cancelled = 0;
  private cancelWaiters: Array<{ n: number; resolve: () => void }> = [];

  /** Leave the next `times` requests unanswered: a model call that never returns. */
  hang(times = 1): void {
    this.hanging = times;
  }

  /** Answers held back until released (`holdNext`). */
  private holds: Array<Promise<void>> = [];

  /**
   * Hold the answer to the next request until the returned function is called: a model call that
   * takes as long as the test needs (to deliver a webhook while a plan is being made).
   */
  holdNext(): () => void {
    let release = () => {};
    this.holds.push(new Promise<void>((resolve) => (release = resolve)));
    return release;
  }

  /** Resolves once the client has cancelled `n` hung requests. */
  cancelledAtLeast(n: number): Promise<void> {
    if (this.cancelled >= n) return Promise.resolve();
    return new Promise((resolve) => this.cancelWaiters.push({ n, resolve }));
  }

  /** Resolves once `n` requests have arrived. */
  received(n: number): Promise<void> {
    if (this.requests.length >= n) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ n, resolve }));
  }

  private async handle(req: Http2ServerRequest, res: Http2ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify(body));
    };
    const path = req.url ?? '';
    const m = /^\/model\/([^/]+)\/converse$/.exec(path);
    if (req.method !== 'POST' || !m) {
      send(
        404,
        { message: `no route ${req.method} ${path}` },
        { 'x-amzn-errortype': 'UnknownOperationException' },
      );
      return;
    }
    let body: ConverseRequest['body'];
    try {
      body = JSON.parse(raw) as ConverseRequest['body'];
    } catch {
      send(400, { message: 'malformed JSON' }, { 'x-amzn-errortype': 'ValidationException' });
      return;
    }
    const prompt = body.messages?.[0]?.content?.map((c) => c.text ?? '').join('\n') ?? '';
    const recorded: ConverseRequest = {
      path,
      modelId: decodeURIComponent(m[1] ?? ''),
      headers: req.headers,
      body,
      prompt,
    };
    this.requests.push(recorded);
    this.waiters = this.waiters.filter((w) => {
      if (this.requests.length < w.n) return true;
      w.resolve();
      return false;
    });
    if (!req.headers.authorization?.startsWith('AWS4-HMAC-SHA256 ')) {
      send(403, { message: 'Missing Authentication Token' }, { 'x-amzn-errortype': 'AccessDeniedException' });
      return;
    }
    const held = this.holds.shift();
    if (held) await held;
    if (this.hanging > 0) {
      this.hanging--;
      res.on('close', () => {
        this.cancelled++;
        this.cancelWaiters = this.cancelWaiters.filter((w) => {
          if (this.cancelled < w.n) return true;
          w.resolve();
          return false;
        });
      });
      return;
    }
    const scripted = this.scripts.take('POST', path);
    if (scripted) {
      send(scripted.status, scripted.body ?? {}, scripted.headers ?? {});
      return;
    }
    const fixture = this.fixtures.find((f) => prompt.includes(f.issue.title.replace(/\s+/g, ' ').trim()));
    if (!fixture) {
      send(
        400,
        { message: 'no recorded answer for this prompt' },
        { 'x-amzn-errortype': 'ValidationException' },
      );
      return;
    }
    send(200, converseResponse(fixture.answer, this.requests.length));
  }
}

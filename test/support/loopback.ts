import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A stand-in service on a loopback port: the fakes of AWS services and Discord extend it with
 * their `handle`. `url` is the base the real client is pointed at once `start` has resolved.
 */
export abstract class LoopbackServer {
  private server: Server | undefined;
  url = '';

  /** The base URL after the port (a path prefix the client's base URL carries, if any). */
  protected basePath = '';

  protected abstract handle(req: IncomingMessage, res: ServerResponse): Promise<void>;

  /** A request's whole body. */
  protected async bodyOf(req: IncomingMessage): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      void this.handle(req, res);
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}${this.basePath}`;
    return this;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise((resolve) => s.close(resolve));
  }
}

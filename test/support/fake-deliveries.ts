/**
 * GitHub's webhook delivery log, as FakeGitHub serves it: `GET /app/hook/deliveries`,
 * `GET /repos/{o}/{r}/hooks/{id}/deliveries` and `GET /orgs/{o}/hooks/{id}/deliveries` (newest
 * first, `per_page`, an opaque `cursor` and a `Link: rel="next"` header, as GitHub pages them),
 * and `POST …/deliveries/{id}/attempts` (202; a new attempt with the same guid and
 * `redelivery: true`; 422 once the delivery is older than 3 days; 404 for an unknown id).
 */

export interface FakeDelivery {
  id: number;
  guid: string;
  delivered_at: string;
  redelivery: boolean;
  duration: number;
  status: string;
  status_code: number;
  event: string;
  action: string | null;
  installation_id: number | null;
  repository_id: number | null;
}

/** `app`, `repo:<owner>/<name>:<hook id>` or `org:<org>:<hook id>`. */
export type HookKey = string;

const WINDOW_MS = 3 * 86_400_000;

export class FakeHookDeliveries {
  readonly hooks = new Map<HookKey, FakeDelivery[]>();
  /** Every redelivery request GitHub accepted: the hook and the delivery id asked for. */
  readonly redeliveries: Array<{ hook: HookKey; id: number; guid: string }> = [];
  /** What the redelivered attempt answers (the receiver's status code); default 202. */
  onRedeliver: (d: FakeDelivery, hook: HookKey) => number | Promise<number> = () => 202;
  now: () => Date = () => new Date();
  private nextId = 70_000_000_000;

  add(hook: HookKey, d: Partial<FakeDelivery> & { guid: string }): FakeDelivery {
    const full: FakeDelivery = {
      id: this.nextId++,
      delivered_at: this.now()
        .toISOString()
        .replace(/\.\d{3}Z$/, 'Z'),
      redelivery: false,
      duration: 0.27,
      status: statusText(d.status_code ?? 202),
      status_code: 202,
      event: 'issues',
      action: 'labeled',
      installation_id: 77,
      repository_id: 1,
      ...d,
    };
    if (d.status_code !== undefined && d.status === undefined) full.status = statusText(d.status_code);
    const list = this.hooks.get(hook) ?? [];
    list.push(full);
    this.hooks.set(hook, list);
    return full;
  }

  /** The attempts of one delivery guid, oldest first. */
  attempts(guid: string): FakeDelivery[] {
    return [...this.hooks.values()].flat().filter((d) => d.guid === guid);
  }

  /** A route of the delivery API, or undefined when `path` is not one. */
  async route(
    method: string,
    fullPath: string,
    baseUrl: string,
  ): Promise<{ status: number; body?: unknown; headers?: Record<string, string> } | undefined> {
    const url = new URL(fullPath, 'http://fake');
    const m =
      /^\/(app)\/hook\/deliveries(?:\/(\d+)(\/attempts)?)?$/.exec(url.pathname) ??
      /^\/repos\/([^/]+\/[^/]+)\/hooks\/(\d+)\/deliveries(?:\/(\d+)(\/attempts)?)?$/.exec(url.pathname) ??
      /^\/orgs\/([^/]+)\/hooks\/(\d+)\/deliveries(?:\/(\d+)(\/attempts)?)?$/.exec(url.pathname);
    if (!m) return undefined;
    let hook: HookKey;
    let id: string | undefined;
    let attempts: string | undefined;
    if (m[1] === 'app') {
      hook = 'app';
      id = m[2];
      attempts = m[3];
    } else {
      hook = `${url.pathname.startsWith('/repos/') ? 'repo' : 'org'}:${m[1]}:${m[2]}`;
      id = m[3];
      attempts = m[4];
    }
    const list = this.hooks.get(hook) ?? [];
    if (method === 'GET' && id === undefined) {
      const sorted = [...list].sort((a, b) => b.delivered_at.localeCompare(a.delivered_at) || b.id - a.id);
      const per = Math.min(100, Number(url.searchParams.get('per_page') ?? 30));
      const cursor = url.searchParams.get('cursor');
      const start = cursor ? Number(Buffer.from(cursor, 'base64url').toString('utf8')) : 0;
      const page = sorted.slice(start, start + per);
      const headers: Record<string, string> = {};
      if (start + per < sorted.length) {
        const next = new URL(`${baseUrl}${url.pathname}`);
        next.searchParams.set('per_page', String(per));
        next.searchParams.set('cursor', Buffer.from(String(start + per)).toString('base64url'));
        headers.link = `<${next.toString()}>; rel="next"`;
      }
      return { status: 200, body: page, headers };
    }
    const found = list.find((d) => String(d.id) === id);
    if (!found) return { status: 404, body: { message: 'Not Found' } };
    if (method === 'GET' && !attempts) return { status: 200, body: found };
    if (method === 'POST' && attempts) {
      if (this.now().getTime() - Date.parse(found.delivered_at) > WINDOW_MS)
        return { status: 422, body: { message: 'This delivery is too old to redeliver.' } };
      this.redeliveries.push({ hook, id: found.id, guid: found.guid });
      const code = await this.onRedeliver(found, hook);
      this.add(hook, {
        guid: found.guid,
        event: found.event,
        action: found.action,
        redelivery: true,
        status_code: code,
      });
      return { status: 202, body: {} };
    }
    return { status: 404, body: { message: 'Not Found' } };
  }
}

function statusText(code: number): string {
  if (code >= 200 && code < 300) return 'OK';
  if (code === 0) return 'timed out';
  return `Invalid HTTP Response: ${code}`;
}

/**
 * A small, transport-independent view of a GitHub webhook delivery: what routing, guards and the
 * built-in agents need, and nothing else. It is stored in the run's data (written on every
 * transition), so large free text is truncated and the raw payload is never kept.
 */

/** Issue and PR bodies are cut here; the planner re-reads the full body through the API when it can. */
export const MAX_BODY_CHARS = 16_000;

export interface RepoRef {
  /** `owner/name` */
  fullName: string;
  owner: string;
  name: string;
  defaultBranch?: string;
  private?: boolean;
}

export interface SubjectRef {
  kind: 'issue' | 'pull_request';
  number: number;
  title: string;
  body: string;
  state?: string;
  url?: string;
  author?: string;
  /** The author's relation to the repo (OWNER, MEMBER, COLLABORATOR, CONTRIBUTOR, NONE, ...). */
  authorAssociation?: string;
  /** Labels present after the event. */
  labels: string[];
}

export interface PullRef {
  headSha?: string;
  headRef?: string;
  baseRef?: string;
  draft?: boolean;
  merged?: boolean;
}

/** A CI result on a branch (workflow_run, check_suite): the CI guard's input. */
export interface CiSignal {
  /** Stable key of what reported: `workflow:<id>` or `app:<slug>`. */
  source: string;
  name: string;
  branch: string | null;
  sha?: string;
  status: string;
  conclusion: string | null;
  /** When GitHub last updated the run or suite (orders out-of-order deliveries). */
  at: string;
  url?: string;
  runId?: number;
  /** workflow_run: the event that started it (push, pull_request, workflow_dispatch, ...). */
  trigger?: string;
  /** workflow_run: `run-name`, which carries a Switchyard run id for dispatched agents. */
  displayTitle?: string;
}

export interface NormalizedEvent {
  /** `X-GitHub-Event`, e.g. `issues`. */
  name: string;
  action?: string;
  /** `X-GitHub-Delivery`: unique per event, unchanged on redelivery. */
  delivery: string;
  repo?: RepoRef;
  installationId?: number;
  sender?: { login: string; type?: string };
  subject?: SubjectRef;
  /** The label just added or removed (`labeled` / `unlabeled`). */
  label?: string;
  pr?: PullRef;
  ci?: CiSignal;
  comment?: { id: number; body: string; author?: string; authorAssociation?: string };
  /** push: the ref and the files touched by its commits (from the payload; no API call). */
  push?: { ref: string; after?: string; files: string[] };
}

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const obj = (v: unknown): Obj | undefined => (isObj(v) ? v : undefined);

type Defined<T> = { [K in keyof T as undefined extends T[K] ? never : K]: T[K] } & {
  [K in keyof T as undefined extends T[K] ? K : never]?: Exclude<T[K], undefined>;
};

/** Copy only defined values, so the result satisfies exactOptionalPropertyTypes and stays small. */
function defined<T extends Obj>(o: T): Defined<T> {
  const out: Obj = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out as Defined<T>;
}

function truncate(text: string, max = MAX_BODY_CHARS): string {
  return text.length <= max ? text : `${text.slice(0, max)}\n…(truncated)`;
}

function labelsOf(v: unknown): string[] {
  if (!Array.isArray(v)) return [];
  return v.flatMap((l) => {
    if (typeof l === 'string') return [l];
    const name = str(obj(l)?.name);
    return name === undefined ? [] : [name];
  });
}

function repoOf(payload: Obj): RepoRef | undefined {
  const r = obj(payload.repository);
  const fullName = str(r?.full_name);
  if (!r || !fullName) return undefined;
  const [owner = '', name = ''] = fullName.split('/');
  return defined({
    fullName,
    owner: str(obj(r.owner)?.login) ?? owner,
    name: str(r.name) ?? name,
    defaultBranch: str(r.default_branch),
    private: typeof r.private === 'boolean' ? r.private : undefined,
  });
}

function subjectOf(raw: Obj, kind: SubjectRef['kind']): SubjectRef | undefined {
  const number = num(raw.number);
  if (number === undefined) return undefined;
  return defined({
    kind,
    number,
    title: str(raw.title) ?? '',
    body: truncate(str(raw.body) ?? ''),
    state: str(raw.state),
    url: str(raw.html_url),
    author: str(obj(raw.user)?.login),
    authorAssociation: str(raw.author_association),
    labels: labelsOf(raw.labels),
  });
}

function ciFromWorkflowRun(wr: Obj): CiSignal | undefined {
  const workflowId = num(wr.workflow_id);
  const at = str(wr.updated_at) ?? str(wr.run_started_at) ?? str(wr.created_at);
  if (workflowId === undefined || at === undefined) return undefined;
  return defined({
    source: `workflow:${workflowId}`,
    name: str(wr.name) ?? `workflow ${workflowId}`,
    branch: str(wr.head_branch) ?? null,
    sha: str(wr.head_sha),
    status: str(wr.status) ?? 'unknown',
    conclusion: str(wr.conclusion) ?? null,
    at,
    url: str(wr.html_url),
    runId: num(wr.id),
    trigger: str(wr.event),
    displayTitle: str(wr.display_title),
  });
}

function ciFromCheckSuite(cs: Obj): CiSignal | undefined {
  const app = obj(cs.app);
  const slug = str(app?.slug) ?? (num(app?.id) !== undefined ? String(num(app?.id)) : undefined);
  const at = str(cs.updated_at) ?? str(cs.created_at);
  if (slug === undefined || at === undefined) return undefined;
  return defined({
    source: `app:${slug}`,
    name: str(app?.name) ?? slug,
    branch: str(cs.head_branch) ?? null,
    sha: str(cs.head_sha),
    status: str(cs.status) ?? 'unknown',
    conclusion: str(cs.conclusion) ?? null,
    at,
    url: str(cs.url),
    runId: num(cs.id),
  });
}

function pushFiles(payload: Obj): string[] {
  const files = new Set<string>();
  const commits = Array.isArray(payload.commits) ? payload.commits : [];
  for (const c of commits) {
    const co = obj(c);
    for (const key of ['added', 'modified', 'removed'] as const) {
      const list = co?.[key];
      if (Array.isArray(list)) for (const f of list) if (typeof f === 'string') files.add(f);
    }
  }
  return [...files];
}

/**
 * Normalise any webhook payload. Never throws for a well-formed JSON object: unknown event types
 * still yield their name, action, repo and sender, so they can be logged and ignored.
 */
export function normalizeEvent(name: string, delivery: string, payload: unknown): NormalizedEvent {
  const p: Obj = isObj(payload) ? payload : {};
  const senderLogin = str(obj(p.sender)?.login);
  const ev: NormalizedEvent = defined({
    name,
    delivery,
    action: str(p.action),
    repo: repoOf(p),
    installationId: num(obj(p.installation)?.id),
    sender: senderLogin ? defined({ login: senderLogin, type: str(obj(p.sender)?.type) }) : undefined,
    label: str(obj(p.label)?.name),
  });

  const issue = obj(p.issue);
  const pull = obj(p.pull_request);
  if (pull && (name === 'pull_request' || name.startsWith('pull_request_review'))) {
    const subject = subjectOf(pull, 'pull_request');
    if (subject) ev.subject = subject;
    ev.pr = defined({
      headSha: str(obj(pull.head)?.sha),
      headRef: str(obj(pull.head)?.ref),
      baseRef: str(obj(pull.base)?.ref),
      draft: typeof pull.draft === 'boolean' ? pull.draft : undefined,
      merged: typeof pull.merged === 'boolean' ? pull.merged : undefined,
    });
  } else if (issue && (name === 'issues' || name === 'issue_comment')) {
    // Comments on PRs arrive as issue_comment with `issue.pull_request` set.
    const subject = subjectOf(issue, issue.pull_request ? 'pull_request' : 'issue');
    if (subject) ev.subject = subject;
  }

  const comment = obj(p.comment);
  if (comment && name === 'issue_comment') {
    const id = num(comment.id);
    if (id !== undefined) {
      ev.comment = defined({
        id,
        body: truncate(str(comment.body) ?? '', 4_000),
        author: str(obj(comment.user)?.login),
        authorAssociation: str(comment.author_association),
      });
    }
  }

  if (name === 'workflow_run') {
    const wr = obj(p.workflow_run);
    const ci = wr ? ciFromWorkflowRun(wr) : undefined;
    if (ci) ev.ci = ci;
  } else if (name === 'check_suite') {
    const cs = obj(p.check_suite);
    const ci = cs ? ciFromCheckSuite(cs) : undefined;
    if (ci) ev.ci = ci;
  }

  if (name === 'push') {
    const ref = str(p.ref);
    if (ref) ev.push = defined({ ref, after: str(p.after), files: pushFiles(p) });
  }
  return ev;
}

/** `issues.labeled`, or just `push` when there is no action. */
export function eventKey(ev: Pick<NormalizedEvent, 'name' | 'action'>): string {
  return ev.action ? `${ev.name}.${ev.action}` : ev.name;
}

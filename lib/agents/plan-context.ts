import { type GitHubClient, splitRepo } from '../github/client.ts';
import { GitHubApiError } from '../github/errors.ts';
import type { PlanInput } from './planner.ts';

/**
 * What a model planner reads besides the issue: the last comments (not Switchyard's own), the
 * repository's instructions for agents and its top-level tree, all from the default branch and all
 * bounded here again (the prompt bounds each part once more). Reads use the planner agent's client,
 * so they are permission-checked and, in dry-run, recorded instead of sent.
 */

export const INSTRUCTION_FILES = ['AGENTS.md', 'CLAUDE.md', '.github/copilot-instructions.md'] as const;
const MAX_COMMENTS_READ = 300;
const MAX_TREE = 200;

/** Whether a comment is one of ours (status comments, triage notes): the model has no use for them. */
const ours = (body: string) => body.includes('<!-- switchyard:');

export async function planContext(
  client: GitHubClient,
  repo: string,
  issue: number,
): Promise<Pick<PlanInput, 'comments' | 'instructions' | 'tree'>> {
  const comments = await client.paginate<{ body?: string | null; user?: { login: string } | null }>(
    'read',
    'GET /repos/{owner}/{repo}/issues/{issue_number}/comments',
    { ...splitRepo(repo), issue_number: issue },
    MAX_COMMENTS_READ,
  );
  const meta = await client.getRepository(repo);
  const ref = meta?.default_branch;
  const instructions: Array<{ path: string; text: string }> = [];
  if (meta) {
    for (const path of INSTRUCTION_FILES) {
      const text = await client.getFileText(repo, path, ref);
      if (typeof text === 'string' && text.trim() !== '') instructions.push({ path, text });
    }
  }
  const tree = meta ? await topLevel(client, repo, ref) : undefined;
  return {
    ...(comments
      ? {
          comments: comments
            .filter((c) => typeof c.body === 'string' && c.body.trim() !== '' && !ours(c.body))
            .slice(-20)
            .map((c) => ({ author: c.user?.login ?? 'unknown', body: c.body as string })),
        }
      : {}),
    ...(instructions.length > 0 ? { instructions } : {}),
    ...(tree && tree.length > 0 ? { tree } : {}),
  };
}

async function topLevel(
  client: GitHubClient,
  repo: string,
  ref: string | undefined,
): Promise<string[] | undefined> {
  try {
    const res = await client.request<Array<{ name?: string; type?: string }>>(
      'read',
      'GET /repos/{owner}/{repo}/contents/',
      { ...splitRepo(repo), ...(ref ? { ref } : {}) },
    );
    if (res.dryRun || !Array.isArray(res.data)) return undefined;
    return res.data
      .filter((e) => typeof e.name === 'string')
      .slice(0, MAX_TREE)
      .map((e) => (e.type === 'dir' ? `${e.name}/` : (e.name as string)));
  } catch (err) {
    // An empty repository has no contents (404): plan without a tree.
    if (err instanceof GitHubApiError && err.status === 404) return undefined;
    throw err;
  }
}

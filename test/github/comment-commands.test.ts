import { describe, expect, it } from 'vitest';
import { commentCommandOf, parseCommentCommand } from '../../lib/github/comment-commands.ts';

const allow = { associations: ['OWNER', 'MEMBER', 'COLLABORATOR'] as const, users: ['Outside-Helper'] };
const payload = (over: {
  action?: string;
  body?: string;
  login?: string;
  type?: string;
  association?: string;
}) => ({
  action: over.action ?? 'created',
  issue: { number: 7 },
  comment: {
    id: 99,
    body: over.body ?? '/approve',
    user: { login: over.login ?? 'bob', type: over.type ?? 'User' },
    author_association: over.association ?? 'MEMBER',
  },
  repository: { full_name: 'acme/app' },
});

describe('comment commands', () => {
  it.each([
    ['/approve', { command: 'approve' }],
    ['/approve p0123abcd\nthanks', { command: 'approve', arg: 'p0123abcd' }],
    ['  /reject too risky  ', { command: 'reject', arg: 'too risky' }],
    ['/cancel', { command: 'cancel' }],
    ['/retry', { command: 'retry' }],
    ['/hold', { command: 'hold' }],
    ['/unhold\nCI is fixed', { command: 'unhold' }],
    ['/approved', undefined],
    ['LGTM\n/approve', undefined],
    ['/deploy now', undefined],
  ])('reads %j', (body, expected) => {
    expect(parseCommentCommand(body)).toEqual(expected);
  });

  it('acts only on new comments by people', () => {
    expect(commentCommandOf(payload({}), { ...allow, associations: [...allow.associations] })).toMatchObject({
      repo: 'acme/app',
      issue: 7,
      commentId: 99,
      login: 'bob',
      command: 'approve',
      listed: true,
    });
    const a = { ...allow, associations: [...allow.associations] };
    expect(commentCommandOf(payload({ action: 'edited' }), a)).toBeUndefined();
    expect(commentCommandOf(payload({ action: 'deleted' }), a)).toBeUndefined();
    expect(commentCommandOf(payload({ type: 'Bot' }), a)).toBeUndefined();
    expect(commentCommandOf(payload({ login: 'renovate[bot]' }), a)).toBeUndefined();
  });

  it('marks who the allowlist lets through: associations, and listed users whatever theirs', () => {
    const a = { ...allow, associations: [...allow.associations] };
    expect(commentCommandOf(payload({ association: 'NONE' }), a)?.listed).toBe(false);
    expect(commentCommandOf(payload({ association: 'NONE', login: 'outside-helper' }), a)?.listed).toBe(true);
  });
});

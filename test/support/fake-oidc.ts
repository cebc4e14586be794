import { createPublicKey, generateKeyPairSync, type KeyObject, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { exportJWK, type JWK, SignJWT } from 'jose';

/**
 * GitHub's Actions OIDC issuer, played on loopback (point GITHUB_OIDC_ISSUER at `url`): a JWKS at
 * `/.well-known/jwks` with a generated RSA key, and tokens shaped like the ones a job gets from
 * `ACTIONS_ID_TOKEN_REQUEST_URL` (claims `repository`, `run_id`, `workflow_ref`, `event_name`,
 * `sub`, ...). Counts JWKS fetches, so a test can see the cache at work.
 *
 * Each issuer's URL has a path of its own (`http://127.0.0.1:<port>/<random>`): the callback keeps
 * one JWKS cache per issuer URL per process, and test files share their worker's modules, so a
 * later file's issuer on a freed port must not be taken for an earlier one with other keys.
 */
export class FakeOidcIssuer {
  readonly kid = `kid-${randomUUID().slice(0, 8)}`;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  jwksFetches = 0;
  url = '';
  private readonly path = `/issuer-${randomUUID().slice(0, 8)}`;
  private server: Server | undefined;
  private jwk: JWK | undefined;

  constructor() {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    this.privateKey = privateKey;
    this.publicKey = createPublicKey(privateKey);
  }

  async start(): Promise<this> {
    this.jwk = { ...(await exportJWK(this.publicKey)), kid: this.kid, alg: 'RS256', use: 'sig' };
    this.server = createServer((req, res) => {
      if (req.method === 'GET' && req.url === `${this.path}/.well-known/jwks`) {
        this.jwksFetches++;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ keys: [this.jwk] }));
        return;
      }
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"message":"Not Found"}');
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    const addr = this.server.address();
    this.url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}${this.path}`;
    return this;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  /** The claims GitHub puts in a dispatched job's token. */
  claims(over: { repo: string; runId: number | string; workflow?: string } & Record<string, unknown>) {
    const { repo, runId, workflow = 'switchyard-agent.yml', ...rest } = over;
    return {
      sub: `repo:${repo}:ref:refs/heads/main`,
      repository: repo,
      repository_owner: repo.split('/')[0],
      run_id: String(runId),
      run_number: '1',
      run_attempt: '1',
      workflow: 'Switchyard agent',
      workflow_ref: `${repo}/.github/workflows/${workflow}@refs/heads/main`,
      event_name: 'workflow_dispatch',
      ref: 'refs/heads/main',
      actor: 'octocat',
      ...rest,
    };
  }

  /** A token signed with the issuer's key (RS256); `opts` bends it for refusal tests. */
  async token(
    claims: Record<string, unknown>,
    opts: {
      audience?: string;
      issuer?: string;
      kid?: string;
      expiresInS?: number;
      issuedAtOffsetS?: number;
      key?: KeyObject;
    } = {},
  ): Promise<string> {
    const now = Math.floor(Date.now() / 1000) + (opts.issuedAtOffsetS ?? 0);
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: opts.kid ?? this.kid })
      .setIssuer(opts.issuer ?? this.url)
      .setAudience(opts.audience ?? 'switchyard')
      .setIssuedAt(now)
      .setNotBefore(now - 5)
      .setExpirationTime(now + (opts.expiresInS ?? 300))
      .setJti(randomUUID())
      .sign(opts.key ?? this.privateKey);
  }
}

import { existsSync, readFileSync } from 'node:fs';
import { CfnOutput, type RemovalPolicy, Validations } from 'aws-cdk-lib';
import type { Function as LambdaFunction } from 'aws-cdk-lib/aws-lambda';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';
import { type ExecutorConfig, parseConfig } from '../lib/routing/config.ts';

/**
 * The signing secrets that HTTP executors name in the bundled config (`secretEnv`), made real on
 * AWS (issue 9, defect 13): one Secrets Manager secret per name, created with a generated
 * placeholder like the stack's own secrets, readable by the worker (its dispatch refuses to run
 * without the secret) and by the callbacks function (it verifies the agent's signature with it),
 * and found by both through `<NAME>_SECRET_ARN` (lib/common/secrets.ts `getNamedSecret`).
 * Operators put the value shared with the agent, as for the other secrets.
 */
export function executorSecretNames(configFile: string): string[] {
  // Stand-in project roots of infrastructure tests may have no config; a real one always does.
  if (!existsSync(configFile)) return [];
  const config = parseConfig(readFileSync(configFile, 'utf8'), configFile);
  const executors: ExecutorConfig[] = [
    ...Object.values(config.executors ?? {}),
    ...Object.values(config.agents).flatMap((a) => (typeof a.executor === 'object' ? [a.executor] : [])),
  ];
  const names = executors.flatMap((e) => (e.type === 'http' && e.secretEnv ? [e.secretEnv] : []));
  return [...new Set(names)].sort();
}

export function createExecutorSecrets(
  scope: Construct,
  opts: {
    configFile: string;
    stage: string;
    removalPolicy: RemovalPolicy;
    /** The functions that read them: the worker (dispatch) and the callbacks function (verify). */
    readers: LambdaFunction[];
  },
): Record<string, Secret> {
  const secrets: Record<string, Secret> = {};
  for (const name of executorSecretNames(opts.configFile)) {
    const id = `ExecutorSecret${name
      .toLowerCase()
      .split('_')
      .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
      .join('')}`;
    const secret = new Secret(scope, id, {
      description: `Switchyard ${opts.stage}: signing secret ${name} shared with an HTTP agent. Set with put-secret-value (docs/deploy.md).`,
      generateSecretString: { excludePunctuation: true, passwordLength: 32 },
      removalPolicy: opts.removalPolicy,
    });
    Validations.of(secret).acknowledge({
      id: 'AwsSolutions-SMG4',
      reason:
        'Shared with an HTTP agent outside AWS, which a rotation Lambda cannot update; rotation is a documented manual step and functions pick new values up within 5 minutes.',
    });
    for (const fn of opts.readers) {
      secret.grantRead(fn);
      fn.addEnvironment(`${name}_SECRET_ARN`, secret.secretArn);
    }
    new CfnOutput(scope, `${id}Arn`, {
      value: secret.secretArn,
      description: `put-secret-value: the signing secret ${name} the HTTP agent shares`,
    });
    secrets[name] = secret;
  }
  return secrets;
}

import { App } from 'aws-cdk-lib';
import { describe, expect, it } from 'vitest';
import { ConfigError, readConfig } from '../../infra/config.ts';

const PUBLIC_KEY = 'b'.repeat(64);
const APP_ID = '123456789012345678';
const config = (context: Record<string, unknown>) => readConfig(new App({ context }).node);

describe('readConfig', () => {
  it('defaults to the dev stage with a stage-specific service name', () => {
    expect(config({})).toMatchObject({ stage: 'dev', serviceName: 'switchyard-dev', logLevel: 'INFO' });
  });

  it('reads prod with its Discord application', () => {
    expect(
      config({
        stage: 'prod',
        discordPublicKey: PUBLIC_KEY,
        discordApplicationId: APP_ID,
        alarmEmail: 'a@b.io',
      }),
    ).toMatchObject({
      stage: 'prod',
      serviceName: 'switchyard',
      discordPublicKey: PUBLIC_KEY,
      discordApplicationId: APP_ID,
      alarmEmail: 'a@b.io',
    });
  });

  it('treats an empty value as absent (`-c alarmEmail=`)', () => {
    expect(config({ alarmEmail: '' })).not.toHaveProperty('alarmEmail');
  });

  it.each([
    [{ stage: 'staging' }, /stage/],
    [{ stage: 'prod' }, /discordPublicKey/],
    [{ discordPublicKey: 'not-hex' }, /64 hex/],
    [{ discordApplicationId: 'abc' }, /snowflake/],
    [{ alarmEmail: 'nobody' }, /email/],
    // JSON numbers cannot hold a snowflake exactly.
    [{ discordApplicationId: 1234567890123456 }, /quote it/],
    [{ logLevel: 'LOUD' }, /logLevel/],
  ])('refuses %j', (context, message) => {
    expect(() => config(context)).toThrow(ConfigError);
    expect(() => config(context)).toThrow(message);
  });
});

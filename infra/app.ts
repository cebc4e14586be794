import { App } from 'aws-cdk-lib';
import { buildApp } from './build.ts';
import { ConfigError } from './config.ts';

// Context: stage (dev|prod), discordPublicKey, discordApplicationId, alarmEmail, logLevel.
// No env: the stack is environment-agnostic and makes no account lookups, so synth works offline.
try {
  buildApp(new App());
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  // A wrong -c value is the operator's to fix: the message is enough, the stack trace is noise.
  console.error(`switchyard: ${err.message}`);
  process.exitCode = 1;
}

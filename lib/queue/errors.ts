import { SwitchyardError } from '../common/errors.ts';

export class QueueError extends SwitchyardError {
  override name = 'QueueError';
  override readonly retryable = true;
}

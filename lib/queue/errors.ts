export class QueueError extends Error {
  override name = 'QueueError';
  readonly retryable = true;
}

import type { Outgoing, StepQueue, WorkMessage } from './port.ts';

/** `receiveCount`: which delivery of the message this is (1 the first), as SQS counts it. */
export type Consumer = (message: WorkMessage, delivery: { receiveCount: number }) => Promise<void>;

/**
 * The in-process queue for the local stack and tests: at-least-once, with delays. A message whose
 * consumer throws is redelivered after `redeliveryMs` (like an SQS visibility timeout), up to
 * `maxReceives`, then parked in `deadLetters`.
 */
export class InMemoryQueue implements StepQueue {
  private consumer: Consumer | undefined;
  private readonly timers = new Set<NodeJS.Timeout>();
  private inFlight = 0;
  private idleWaiters: Array<() => void> = [];
  readonly sent: Outgoing[] = [];
  readonly deadLetters: Array<{ message: WorkMessage; error: unknown }> = [];
  /** Delays are multiplied by this (tests run backoffs fast). */
  timeScale: number;
  private readonly redeliveryMs: number;
  private readonly maxReceives: number;
  private stopped = false;

  constructor(opts: { timeScale?: number; redeliveryMs?: number; maxReceives?: number } = {}) {
    this.timeScale = opts.timeScale ?? 1;
    this.redeliveryMs = opts.redeliveryMs ?? 1_000;
    this.maxReceives = opts.maxReceives ?? 5;
  }

  /** Attach the consumer (the worker). Without one, messages wait in `pending`. */
  consume(consumer: Consumer): void {
    this.consumer = consumer;
    const waiting = this.pending.splice(0);
    for (const m of waiting) this.schedule(m, 0, 1);
  }

  readonly pending: WorkMessage[] = [];

  async send(batch: Outgoing[]): Promise<void> {
    for (const out of batch) {
      this.sent.push(out);
      this.schedule(out.message, (out.delaySeconds ?? 0) * 1000, 1);
    }
  }

  private schedule(message: WorkMessage, delayMs: number, receive: number): void {
    if (this.stopped) return;
    if (!this.consumer) {
      this.pending.push(message);
      return;
    }
    this.inFlight++;
    const timer = setTimeout(
      () => {
        this.timers.delete(timer);
        void this.deliver(message, receive);
      },
      Math.max(0, delayMs * this.timeScale),
    );
    this.timers.add(timer);
  }

  private async deliver(message: WorkMessage, receive: number): Promise<void> {
    try {
      await this.consumer?.(message, { receiveCount: receive });
    } catch (error) {
      if (receive >= this.maxReceives) this.deadLetters.push({ message, error });
      else this.schedule(message, this.redeliveryMs, receive + 1);
    } finally {
      // stop() already zeroed the count for deliveries still running when it was called.
      if (this.inFlight > 0) this.inFlight--;
      if (this.inFlight === 0) for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  /** Resolves when no message is scheduled or being consumed. */
  async idle(): Promise<void> {
    if (this.inFlight === 0) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.inFlight = 0;
    for (const w of this.idleWaiters.splice(0)) w();
  }
}

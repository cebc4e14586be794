/**
 * Published us-east-1 list prices (USD) that bench/cost.ts prices a run with. No free tier, no
 * savings plans, no volume tiers beyond the first: a conservative price for a small deployment.
 *
 * This machine has no network, so none of these could be re-read from the pages while writing
 * this table. Each figure is the one the page stated when last read (2026, shared research notes);
 * the ones marked "unverified" are second-hand and should be checked against the page before a
 * decision rests on them. A change of price changes only this file.
 */
export const PRICES = {
  dynamodb: {
    // https://aws.amazon.com/dynamodb/pricing/on-demand/ — on-demand, after the November 2024 cut
    // (halved from $1.25 and $0.25). Unverified offline.
    perMillionWriteRequestUnits: 0.625,
    perMillionReadRequestUnits: 0.125,
  },
  sqs: {
    // https://aws.amazon.com/sqs/pricing/ — standard queue, per million requests after the first
    // million a month; every 64 KB chunk of a request's payload is billed as one request.
    perMillionRequestsStandard: 0.4,
    // Same page: FIFO queues.
    perMillionRequestsFifo: 0.5,
    billedChunkBytes: 64 * 1024,
  },
  lambda: {
    // https://aws.amazon.com/lambda/pricing/ — Arm (Graviton2), first 7.5 billion GB-s a month;
    // duration is billed per 1 ms.
    perMillionRequests: 0.2,
    perGbSecondArm64: 0.0000133334,
  },
  apiGateway: {
    // https://aws.amazon.com/api-gateway/pricing/ — HTTP APIs, first 300 million requests a month,
    // each 512 KB of a request counted as one request.
    perMillionHttpApiRequests: 1.0,
  },
  stepFunctions: {
    // https://aws.amazon.com/step-functions/pricing/ — Standard workflows: $0.025 per 1,000 state
    // transitions; retries count as transitions.
    perMillionStateTransitionsStandard: 25,
  },
  durableFunctions: {
    // https://aws.amazon.com/lambda/pricing/ ("Lambda durable functions", GA December 2025):
    // per million durable operations (steps, waits, callbacks, child contexts...). Second-hand
    // (the page renders its rates client-side; the figure is from its worked example):
    // unverified offline. The page also charges for data written and retained by the durable
    // execution (per GB); a run writes a few KB, so that part is left out (in their favour).
    perMillionDurableOperations: 8.0,
    // Invocations (each replay after a wait or callback is one) and their duration are billed as
    // ordinary Lambda requests and GB-s, at the `lambda` prices above.
  },
} as const;

/** USD for `n` units at `perMillion` per million. */
export const perMillion = (n: number, price: number) => (n * price) / 1_000_000;

import { sweeperFunction } from '../lib/app/sweeper.ts';

/** Scheduled sweep: lib/app/sweeper.ts. */
export const handler = sweeperFunction();

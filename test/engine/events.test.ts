import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { EVENT_TYPES, isEventType, runEndEvent } from '../../lib/engine/events.ts';
import { isTerminal, type NewEvent, RUN_STATUSES } from '../../lib/engine/types.ts';

const LIB = resolve(dirname(fileURLToPath(import.meta.url)), '../../lib');

function sourceText(dir: string): string {
  return readdirSync(dir, { withFileTypes: true })
    .map((e) => {
      const path = join(dir, e.name);
      if (e.isDirectory()) return sourceText(path);
      return e.name.endsWith('.ts') && path !== join(LIB, 'engine/events.ts')
        ? readFileSync(path, 'utf8')
        : '';
    })
    .join('\n');
}

describe('event type names', () => {
  it('are listed once each, as dotted lowercase names', () => {
    expect(new Set(EVENT_TYPES).size).toBe(EVENT_TYPES.length);
    for (const type of EVENT_TYPES) expect(type).toMatch(/^[a-z][a-z-]*(\.[a-z-]+)+$/);
  });

  it('are each written somewhere in lib/ (no name in the list that nothing writes)', () => {
    const text = sourceText(LIB);
    // `signal.<type>` is written from the signal's type, and the run's end event by runEndEvent.
    const madeByName = (t: string) => t.startsWith('signal.') || t === 'run.cancelled';

    const unwritten = EVENT_TYPES.filter((t) => !madeByName(t) && !text.includes(`'${t}'`));

    expect(unwritten).toEqual([]);
  });

  it('name the end of a run for each terminal status, and no other', () => {
    for (const status of RUN_STATUSES) {
      if (isTerminal(status)) expect(isEventType(runEndEvent(status))).toBe(true);
      else expect(() => runEndEvent(status)).toThrow(/no event ends a run/);
    }
  });

  it('refuse a name not in the list, at compile time and at run time', () => {
    // @ts-expect-error an unknown event type does not compile
    const unknown: NewEvent = { type: 'step.finished', detail: {} };

    expect(isEventType(unknown.type)).toBe(false);
    expect(isEventType('step.succeeded')).toBe(true);
  });
});

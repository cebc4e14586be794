/**
 * GitHub refuses a comment body over 65,536 characters with a 422, for good. The status comment
 * is kept below a safe cap: a long checklist is summarised (whole task lines kept, the rest
 * counted), never cut mid-line; anything else too long is cut at a line, closing an open fence.
 */
export const COMMENT_MAX_CHARS = 60_000;

const TASK_LINE = /^- \[([ x])\] /;

export function capComment(body: string, max: number = COMMENT_MAX_CHARS): string {
  if (body.length <= max) return body;
  const lines = body.split('\n');
  const tasks = lines.map((l, i) => (TASK_LINE.test(l) ? i : -1)).filter((i) => i >= 0);
  if (tasks.length > 0) {
    // Drop task lines from the end of the list until the rest fits with a summary line.
    const first = tasks[0]!;
    const last = tasks[tasks.length - 1]!;
    const before = lines.slice(0, first);
    const after = lines.slice(last + 1);
    const taskLines = lines.slice(first, last + 1);
    const fixed = [...before, ...after].join('\n').length + 200;
    const kept: string[] = [];
    let used = fixed;
    for (const l of taskLines) {
      if (used + l.length + 1 > max) break;
      kept.push(l);
      used += l.length + 1;
    }
    const dropped = taskLines.slice(kept.length).filter((l) => TASK_LINE.test(l));
    if (dropped.length > 0) {
      const done = dropped.filter((l) => l.startsWith('- [x]')).length;
      kept.push(
        `- … and ${dropped.length} more tasks (${done} done) not shown: the comment would be too long`,
      );
    }
    const summarised = [...before, ...kept, ...after].join('\n');
    if (summarised.length <= max) return summarised;
    return cutAtLine(summarised, max);
  }
  return cutAtLine(body, max);
}

function cutAtLine(body: string, max: number): string {
  const note = '\n\n_(shortened: the full status is in the run history)_';
  const out: string[] = [];
  let used = note.length + 8;
  let fenced = false;
  for (const l of body.split('\n')) {
    if (used + l.length + 1 > max) break;
    out.push(l);
    used += l.length + 1;
    if (/^\s*```/.test(l)) fenced = !fenced;
  }
  if (fenced) out.push('```');
  return `${out.join('\n')}${note}`;
}

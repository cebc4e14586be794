import { parseArgs } from 'node:util';
import { budgetLine } from '../lib/agents/budget.ts';
import { plannerLine } from '../lib/agents/plan-usage.ts';
import { queueFromEnv, storeFromEnv } from '../lib/app/core.ts';
import { resolveStoreEnv } from '../lib/app/local-env.ts';
import { Engine, type Signal } from '../lib/engine/engine.ts';
import { SwitchyardError } from '../lib/engine/errors.ts';
import { describePause, listPauses, setPaused } from '../lib/engine/pause.ts';
import { isTerminal, RUN_STATUSES, type Run, type RunEvent, toPublicRun } from '../lib/engine/types.ts';
import type { Outgoing, StepQueue } from '../lib/queue/port.ts';
import { buildRegistry } from '../lib/workflows/index.ts';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const USAGE = `usage: npm run runs -- <command> [--json]

  list [--status S] [--repo owner/name] [--limit N]   runs, newest first
  start [WORKFLOW] --repo owner/name [--issue N]     start a run by hand (default: issue-pipeline)
  show ID                                            a run and its history
  approve ID [--plan VERSION] [--budget USD]         approve the gate the run waits at
                                                     (at a budget gate: the new USD cap)
  reject ID [--reason TEXT]                          reject it
  cancel ID [--reason TEXT]                          cancel a run in any non-terminal state
  retry ID                                           re-run a failed run from its failed node
  pause|resume [--repo owner/name]                   kill switch: no new runs or dispatches (audited)
  paused                                             what is paused

Uses DYNAMODB_ENDPOINT / TABLE_NAME, else a running local stack (npm start), else AWS
(TABLE_NAME and QUEUE_URL of the deployed stack).`;

/**
 * A queue for the CLI when no SQS queue is configured (the local stack): the signal is committed
 * to DynamoDB and the stack's sweeper enqueues the next step within its interval.
 */
class DeferToSweeper implements StepQueue {
  async send(_batch: Outgoing[]): Promise<void> {}
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

function subject(run: Run): string {
  return run.subject.key;
}

/** The plan's version, planner, usage and cost for `show --json` (budgets and dashboards read these). */
function planJson(run: Run): { plan?: Record<string, unknown> } {
  const p = run.data.plan as Record<string, unknown> | undefined;
  if (!p || typeof p.version !== 'string') return {};
  const pick = ['version', 'planner', 'usage', 'costUsd', 'fallback'] as const;
  return { plan: Object.fromEntries(pick.filter((k) => p[k] !== undefined).map((k) => [k, p[k]])) };
}

function describeRun(run: Run, events: RunEvent[]): string {
  const lines = [
    `run       ${run.id}`,
    `workflow  ${run.workflow}`,
    `status    ${run.status}${run.reason ? ` (${run.reason})` : ''}`,
    `node      ${run.node ?? '-'}`,
    `subject   ${subject(run)}`,
    `trigger   ${run.trigger.source}${run.trigger.actor ? ` by ${run.trigger.actor}` : ''}`,
    `created   ${run.createdAt}`,
    `updated   ${run.updatedAt}`,
  ];
  if (run.gate) {
    lines.push(
      `gate      ${run.gate.kind} at ${run.gate.node} until ${run.gate.expiresAt}${run.gate.binding ? ` (plan ${run.gate.binding})` : ''}`,
    );
  }
  const spend = budgetLine(run.data.budget);
  if (spend) lines.push(`spend     ${spend}`);
  const plan = run.data.plan as { version?: unknown } | undefined;
  const who = plannerLine(plan);
  if (who) lines.push(`plan      ${typeof plan?.version === 'string' ? `${plan.version} ` : ''}by ${who}`);
  lines.push('', 'history:');
  for (const e of events) {
    const detail = JSON.stringify(e.detail);
    lines.push(
      `  ${e.at}  ${e.type.padEnd(18)} ${(e.node ?? '').padEnd(10)} ${e.by ?? ''} ${detail.length > 120 ? `${detail.slice(0, 117)}...` : detail}`,
    );
  }
  return lines.join('\n');
}

export async function main(argv: string[], out: (s: string) => void = console.log): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      json: { type: 'boolean', default: false },
      status: { type: 'string' },
      repo: { type: 'string' },
      limit: { type: 'string' },
      reason: { type: 'string' },
      plan: { type: 'string' },
      budget: { type: 'string' },
      by: { type: 'string' },
      issue: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const [command, id] = positionals;
  if (values.help || !command) {
    out(USAGE);
    // Asking for help succeeds; a missing command is a usage error.
    return values.help ? 0 : 2;
  }
  const env = resolveStoreEnv();
  const store = storeFromEnv(env);
  const queue = env.QUEUE_URL ? queueFromEnv(env) : new DeferToSweeper();
  const engine = new Engine({ store, queue, workflows: buildRegistry(), services: {} });
  const by = values.by ?? `cli:${process.env.USER ?? 'operator'}`;
  const print = (human: string, machine: unknown) =>
    out(values.json ? JSON.stringify(machine, null, 2) : human);

  if (command === 'list') {
    const limit = values.limit === undefined ? 20 : Number(values.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 500) {
      out('--limit must be an integer from 1 to 500');
      return 2;
    }
    if (values.status !== undefined && !RUN_STATUSES.includes(values.status as Run['status'])) {
      out(`--status must be one of ${RUN_STATUSES.join(', ')}`);
      return 2;
    }
    const runs = await engine.listRuns({
      limit,
      ...(values.status ? { status: values.status as Run['status'] } : {}),
      ...(values.repo ? { repo: values.repo } : {}),
    });
    const rows = [['ID', 'WORKFLOW', 'STATUS', 'NODE', 'SUBJECT', 'UPDATED']];
    for (const r of runs) rows.push([r.id, r.workflow, r.status, r.node ?? '-', subject(r), r.updatedAt]);
    print(runs.length === 0 ? 'no runs' : table(rows), { runs: runs.map(toPublicRun) });
    return 0;
  }
  if (command === 'start') {
    const workflow = id ?? 'issue-pipeline';
    if (!values.repo || !/^[\w.-]+\/[\w.-]+$/.test(values.repo)) {
      out(`start needs --repo owner/name\n\n${USAGE}`);
      return 2;
    }
    const issue = values.issue ? Number(values.issue) : undefined;
    let started: Awaited<ReturnType<typeof engine.startRun>>;
    try {
      started = await engine.startRun({
        workflow,
        subject: {
          repo: values.repo,
          ...(issue ? { issue } : {}),
          key: issue ? `${values.repo}#${issue}` : values.repo,
        },
        trigger: { source: 'cli', actor: by },
      });
    } catch (err) {
      // The workflow needs a field the command line did not give (issue-pipeline: --issue).
      if (!(err instanceof SwitchyardError)) throw err;
      print(`start refused: ${err.message}`, { error: err.name, message: err.message });
      return 1;
    }
    const { run, outcome } = started;
    print(`${outcome}: run ${run.id} (${run.workflow}) is ${run.status} at ${run.node}`, {
      outcome,
      run: toPublicRun(run),
    });
    return 0;
  }
  if (command === 'pause' || command === 'resume') {
    if (values.repo !== undefined && !/^[\w.-]+\/[\w.-]+$/.test(values.repo)) {
      out('--repo must be owner/name');
      return 2;
    }
    const res = await setPaused(store, {
      paused: command === 'pause',
      ...(values.repo ? { repo: values.repo } : {}),
      by,
    });
    print(`${command}${res.changed ? 'd' : ' (no change)'}: ${res.scope}`, res);
    return 0;
  }
  if (command === 'paused') {
    const pauses = await listPauses(store);
    print(pauses.map(describePause).join('\n') || 'nothing is paused', { pauses });
    return 0;
  }
  if (!id) {
    out(`${command} needs a run id\n\n${USAGE}`);
    return 2;
  }
  if (command === 'show') {
    const run = await engine.getRun(id);
    if (!run) {
      print(`run ${id} not found`, { error: 'run not found', id });
      return 1;
    }
    const events = await engine.listEvents(id);
    print(describeRun(run, events), {
      run: toPublicRun(run),
      ...planJson(run),
      ...(run.data.budget ? { budget: run.data.budget } : {}),
      events,
    });
    return 0;
  }
  const signals: Record<string, () => Signal> = {
    approve: () => ({
      type: 'approve',
      by,
      ...(values.plan ? { binding: values.plan } : {}),
      ...(values.budget !== undefined ? { budget: Number(values.budget) } : {}),
    }),
    reject: () => ({ type: 'reject', by, ...(values.reason ? { reason: values.reason } : {}) }),
    cancel: () => ({ type: 'cancel', by, ...(values.reason ? { reason: values.reason } : {}) }),
    retry: () => ({ type: 'retry', by }),
  };
  const make = signals[command];
  if (!make) {
    out(`unknown command ${command}\n\n${USAGE}`);
    return 2;
  }
  if (values.budget !== undefined) {
    const amount = Number(values.budget);
    if (command !== 'approve' || !Number.isFinite(amount) || amount <= 0 || amount > 1_000_000) {
      out('--budget takes a USD amount above 0 (with approve, at a budget gate)');
      return 2;
    }
  }
  try {
    let signal = make();
    let approved: string | undefined;
    if (signal.type === 'approve') {
      // Approve the version read now (or the one given), never whatever the gate shows later, and say which.
      const gate = (await engine.getRun(id))?.gate;
      if (signal.budget !== undefined && gate?.kind !== 'budget') {
        print(`approve refused: run ${id} is not waiting at a budget gate`, {
          error: 'InvalidSignal',
          message: 'not at a budget gate',
        });
        return 1;
      }
      approved = signal.binding ?? gate?.binding;
      if (approved !== undefined) signal = { ...signal, binding: approved };
    }
    const run = await engine.signal(id, signal);
    const next = isTerminal(run.status) ? run.status : `${run.status} at ${run.node}`;
    const raised =
      signal.type === 'approve' && signal.budget !== undefined ? ` (budget $${signal.budget})` : '';
    print(
      `${command}${approved !== undefined ? ` (${raised ? 'gate' : 'plan'} ${approved})` : ''}${raised}: run ${id} is now ${next}`,
      {
        run: toPublicRun(run),
        ...(approved !== undefined ? { plan: approved } : {}),
      },
    );
    return 0;
  } catch (err) {
    if (err instanceof SwitchyardError) {
      print(`${command} refused: ${err.message}`, { error: err.name, message: err.message });
      return 1;
    }
    throw err;
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(err instanceof Error ? err.message : err);
      process.exit(1);
    },
  );
}

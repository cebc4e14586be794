import type { AgentIdentity, Permission } from '../github/permissions.ts';
import type { AgentConfig, AgentType, ExecutorConfig, SwitchyardConfig } from './config.ts';
import { RoutingError } from './errors.ts';

/**
 * The agent registry: the spokes declared in config (`agents:`), with their type, executor,
 * concurrency and permissions. Permissions are enforced by the GitHub client built for an
 * agent (`GitHubClientFactory.forAgent(registry.identity(name))`), not by convention.
 */

export interface RegisteredAgent {
  name: string;
  type: AgentType;
  description?: string;
  executor: ExecutorConfig;
  permissions: readonly Permission[];
  concurrency: number;
  envAllowlist: readonly string[];
  priority: number;
}

export class UnknownAgentError extends RoutingError {
  override name = 'UnknownAgentError';
  override readonly retryable = false;
}

/**
 * Hub-internal roles that act on GitHub without being configured as agents. Declaring an agent
 * of the same name in config overrides these grants (to narrow them, for example).
 */
export const BUILTIN_IDENTITIES: Readonly<Record<string, AgentIdentity>> = {
  /** Reads config, PR files and CI state for routing decisions. */
  router: { name: 'router', permissions: ['read'] },
  /** Keeps the one status comment per run. */
  reporter: { name: 'reporter', permissions: ['read', 'comment'] },
  /** Flips the per-PR routing label for the Discord `/route` command. */
  'pr-toggle': { name: 'pr-toggle', permissions: ['read', 'comment', 'apply_labels'] },
};

export class AgentRegistry {
  private readonly agents = new Map<string, RegisteredAgent>();

  constructor(config: SwitchyardConfig) {
    for (const [name, a] of Object.entries(config.agents)) {
      this.agents.set(name, toRegistered(name, a, config));
    }
  }

  get(name: string): RegisteredAgent | undefined {
    return this.agents.get(name);
  }

  require(name: string): RegisteredAgent {
    const a = this.agents.get(name);
    if (!a) throw new UnknownAgentError(`unknown agent ${name}`);
    return a;
  }

  list(): RegisteredAgent[] {
    return [...this.agents.values()];
  }

  byType(type: AgentType): RegisteredAgent[] {
    return this.list().filter((a) => a.type === type);
  }

  /** The identity a GitHub client acts as: a configured agent, else a built-in role. */
  identity(name: string): AgentIdentity {
    const a = this.agents.get(name);
    if (a) return { name: a.name, permissions: a.permissions };
    const builtin = BUILTIN_IDENTITIES[name];
    if (builtin) return builtin;
    throw new UnknownAgentError(`unknown agent ${name}`);
  }
}

function toRegistered(name: string, a: AgentConfig, config: SwitchyardConfig): RegisteredAgent {
  const executor = typeof a.executor === 'string' ? config.executors[a.executor] : a.executor;
  // Config validation already refused unknown executor names; this only guards direct construction.
  if (!executor) throw new UnknownAgentError(`agent ${name}: unknown executor ${String(a.executor)}`);
  return {
    name,
    type: a.type,
    ...(a.description !== undefined ? { description: a.description } : {}),
    executor,
    permissions: [...new Set(a.permissions)],
    concurrency: a.concurrency,
    envAllowlist: a.envAllowlist,
    priority: a.priority,
  };
}

/**
 * The environment an agent's executor may see: only the allowlisted names, and only those set.
 * (The DevOnboarder seed's env allowlist filter, as a function.)
 */
export function filterEnv(
  agent: Pick<RegisteredAgent, 'envAllowlist'>,
  env: NodeJS.ProcessEnv,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of agent.envAllowlist) {
    const v = env[key];
    if (v !== undefined) out[key] = v;
  }
  return out;
}

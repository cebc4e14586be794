/** Scripted answers for the loopback fakes of Discord and GitHub: tests override the default behaviour. */
export interface ScriptedResponse {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** How many times this answer is used before the default behaviour resumes (default: always). */
  times?: number;
}

interface Script {
  method: string | undefined;
  path: RegExp;
  response: ScriptedResponse;
  used: number;
}

export class Scripts {
  private readonly list: Script[] = [];

  /** Add a script; `first` puts it before earlier ones (the newest wins). */
  add(method: string | undefined, path: RegExp, response: ScriptedResponse, first = false): void {
    const s = { method, path, response, used: 0 };
    if (first) this.list.unshift(s);
    else this.list.push(s);
  }

  clear(): void {
    this.list.length = 0;
  }

  /** The scripted answer for this request, counting its use; undefined: default behaviour. */
  take(method: string, path: string): ScriptedResponse | undefined {
    for (const s of this.list) {
      if ((s.method && s.method !== method) || !s.path.test(path)) continue;
      if (s.response.times !== undefined && s.used >= s.response.times) continue;
      s.used++;
      return s.response;
    }
    return undefined;
  }
}

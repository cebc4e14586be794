/**
 * Where an HTTP executor may send tasks (and with them a signing secret and a callback token):
 * only over TLS, except to this machine, where a local agent or a test double listens.
 */

const LOOPBACK_HOSTS = new Set(['localhost', '[::1]', '::1']);

/** Whether `hostname` (as `URL#hostname` gives it) is this machine. */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.toLowerCase();
  if (LOOPBACK_HOSTS.has(h) || h.endsWith('.localhost')) return true;
  return /^127(?:\.\d{1,3}){3}$/.test(h);
}

/** Why `url` is not an acceptable executor endpoint, or undefined when it is. */
export function executorUrlProblem(url: string): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return 'not a URL';
  }
  if (u.protocol === 'https:') return undefined;
  if (u.protocol === 'http:' && isLoopbackHost(u.hostname)) return undefined;
  return 'must use https:// (http:// only to a loopback address such as 127.0.0.1 or localhost)';
}

/** Header values as the endpoints receive them: API Gateway v2 gives strings; Node may give arrays. */
export type HeaderMap = Record<string, string | string[] | undefined>;

/**
 * The one case-insensitive header lookup (API Gateway v2 lowercases names; the local adapter
 * does too, tests and other callers may not). A repeated header counts as its first value.
 */
export function header(headers: HeaderMap | undefined, name: string): string | undefined {
  if (!headers) return undefined;
  const wanted = name.toLowerCase();
  const direct = headers[wanted];
  if (direct !== undefined) return Array.isArray(direct) ? direct[0] : direct;
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() !== wanted) continue;
    return Array.isArray(v) ? v[0] : v;
  }
  return undefined;
}

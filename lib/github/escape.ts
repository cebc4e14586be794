/**
 * Untrusted text (issue and task titles, plan summaries, reasons that quote people, file names)
 * made inert for GitHub comments (GitHub Flavored Markdown with inline HTML).
 *
 * - `&`, `<` and `>` become entities, so no HTML survives: no `<!-- -->` comment (which could
 *   hide text or forge Switchyard's own markers), no `<details>`, `<img>` or `<a>`.
 * - Markdown marks are backslash-escaped, so no link `[text](url)`, image, emphasis, table or
 *   code span can be built; `inline` also folds line breaks, so no heading, list or quote starts.
 * - `@` gets a zero-width space after it, so `@user` and `@org/team` do not notify anyone.
 */

const ZWSP = '\u200b';
const MARKS = /[\\`*_~|[\]()!#]/g;

/** Escape `text` for a GitHub comment, keeping its line breaks. */
export function escapeGitHub(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(MARKS, (c) => `\\${c}`)
    .replace(/@/g, `@${ZWSP}`);
}

/** Escape `text` for use inside one line of a GitHub comment (line breaks become spaces). */
export function escapeGitHubInline(text: string): string {
  return escapeGitHub(text.replace(/\s+/g, ' ').trim());
}

/** `text` as an inline code span: backticks and line breaks cannot end it early. */
export function codeSpan(text: string): string {
  return `\`${text.replace(/[`\r\n]/g, ' ')}\``;
}

/**
 * `url` as a Markdown link target, or undefined: only `https:` URLs without credentials (no
 * `javascript:`, no relative path), normalised by the URL parser and with the characters that could
 * end the target percent-encoded, so a URL from a payload (a check run's `details_url`) stays one link.
 */
export function linkTarget(url: string | undefined): string | undefined {
  if (!url) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return undefined;
  }
  if (parsed.protocol !== 'https:' || parsed.username !== '' || parsed.password !== '') return undefined;
  return parsed.href.replace(
    /[()<>[\]\s"'`\\]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`,
  );
}

/** ` ([label](url))` for an https `url`, else nothing. `label` is ours, not user text. */
export function linkSuffix(label: string, url: string | undefined): string {
  const target = linkTarget(url);
  return target ? ` ([${label}](${target}))` : '';
}

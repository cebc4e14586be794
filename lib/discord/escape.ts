/**
 * Untrusted text (issue and task titles, plan summaries, reasons that quote people) made inert
 * for Discord message content and embeds. Discord's markdown has no HTML, but it has masked
 * links `[text](url)`, mentions (`@everyone`, `@here`, `<@id>`, `<@!id>`, `<@&id>`, `<#id>`),
 * headings and subtext at the start of a line, and the usual emphasis and code marks.
 *
 * - Every markdown mark is backslash-escaped, so no link, heading or code span can be built.
 * - Every `@` gets a zero-width space after it (`@everyone`, `@here`), and the `<` of `<@…>` / `<#…>`
 *   is escaped, so a mention is shown as text. Messages also send `allowed_mentions: {parse: []}`:
 *   two locks, because either alone has been got wrong before.
 * - `inline` also folds line breaks, so text embedded in a line cannot start a new block.
 */

const ZWSP = '\u200b';
/** Characters with a meaning in Discord markdown (incl. `-` and `#` that start subtext and headings). */
const MARKS = /[\\`*_~|[\]()<>#:!-]/g;

/** Escape `text` for Discord markdown, keeping its line breaks. */
export function escapeDiscord(text: string): string {
  return text.replace(MARKS, (c) => `\\${c}`).replace(/@/g, `@${ZWSP}`);
}

/** Escape `text` for use inside one line of a Discord message (line breaks become spaces). */
export function escapeDiscordInline(text: string): string {
  return escapeDiscord(text.replace(/\s+/g, ' ').trim());
}

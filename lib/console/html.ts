/**
 * HTML built from tagged templates that escape every interpolated value unless it is already
 * `Html` (made by this module). Run text (titles, reasons, event details) is untrusted: it can only
 * ever reach a page as text, never as markup, whichever template it goes through.
 */
export class Html {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Escape text for element content and quoted attribute values alike. */
export function esc(text: unknown): string {
  return String(text ?? '').replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

type Part = Html | string | number | boolean | null | undefined | readonly Part[];

function render(part: Part): string {
  if (part === null || part === undefined || part === false) return '';
  if (part instanceof Html) return part.value;
  if (Array.isArray(part)) return (part as readonly Part[]).map(render).join('');
  return esc(part);
}

export function html(strings: TemplateStringsArray, ...values: Part[]): Html {
  let out = strings[0] ?? '';
  for (let i = 0; i < values.length; i++) out += render(values[i]) + (strings[i + 1] ?? '');
  return new Html(out);
}

/** Markup from our own code only (constants, SVG built from escaped parts). */
export const raw = (markup: string): Html => new Html(markup);

/** A link only to an https URL on an allowed host; anything else renders as plain text. */
export function safeHttpsUrl(url: unknown, hosts: readonly string[] = ['github.com']): string | undefined {
  if (typeof url !== 'string' || url.length > 2048) return undefined;
  try {
    const u = new URL(url);
    if (u.protocol !== 'https:' || !hosts.includes(u.hostname) || u.username || u.password) return undefined;
    return u.toString();
  } catch {
    return undefined;
  }
}

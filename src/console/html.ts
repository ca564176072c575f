/**
 * HTML built from tagged templates, escaped by construction: every value interpolated into
 * `html`…`` is escaped unless it is itself an `Html` fragment (another `html`…`` or an explicit
 * `raw()`), so a page cannot forget to escape a user name, an address or an audit detail.
 *
 * Escaping covers text and double- or single-quoted attribute values alike (& < > " ' and the
 * backtick all become character references). An unquoted attribute value (`href=${x}`) could
 * still be broken out of with a space, so the template refuses it: the first render of such a
 * template throws. Control characters other than tab, newline and carriage return are not
 * allowed in HTML text; they become U+FFFD rather than reaching the parser.
 *
 * What escaping cannot do is make a URL safe: pages build hrefs from fixed paths plus
 * `encodeURIComponent` of names (see `path` below), never from a caller-supplied scheme.
 */

export class Html {
  constructor(readonly text: string) {}

  toString(): string {
    return this.text;
  }
}

/** What may go into a template: false, null and undefined render nothing; arrays are joined. */
export type Interpolation =
  Html | string | number | false | null | undefined | readonly Interpolation[];

const ENTITIES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
  '`': '&#96;',
};

// C0 controls except \t \n \r, DEL and the C1 controls.
const UNSAFE = /[&<>"'`\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/g;

export function escapeHtml(text: string): string {
  return text.replace(UNSAFE, (c) => ENTITIES[c] ?? '\ufffd');
}

/** Text the caller vouches for (fixed markup, never data). */
export function raw(text: string): Html {
  return new Html(text);
}

function render(value: Interpolation): string {
  if (value instanceof Html) return value.text;
  if (value === false || value === null || value === undefined) return '';
  if (typeof value === 'number') return String(value);
  if (Array.isArray(value)) return (value as readonly Interpolation[]).map(render).join('');
  return escapeHtml(value as string);
}

/**
 * Each template call site's fixed parts, checked once and with the indentation the source
 * needs squeezed out: a run of white space that holds a line break becomes one space. HTML
 * treats both alike outside `<pre>` and `<textarea>`, which the console's templates do not
 * hold, and a 1,000-row table is a third smaller for it.
 */
const prepared = new WeakMap<TemplateStringsArray, readonly string[]>();

function prepare(strings: TemplateStringsArray): readonly string[] {
  let parts = prepared.get(strings);
  if (parts) return parts;
  for (let i = 0; i < strings.length - 1; i++) {
    if (/=\s*$/.test(strings[i]))
      throw new Error(`html: unquoted attribute value after "${strings[i].slice(-30)}"`);
  }
  parts = strings.map((s) => s.replace(/[ \t]*\n\s*/g, ' '));
  prepared.set(strings, parts);
  return parts;
}

export function html(strings: TemplateStringsArray, ...values: Interpolation[]): Html {
  const parts = prepare(strings);
  let out = parts[0];
  for (let i = 0; i < values.length; i++) out += render(values[i]) + parts[i + 1];
  return new Html(out);
}

/** A console or API path: fixed segments as written, data segments percent-encoded. */
export function path(strings: TemplateStringsArray, ...segments: (string | number)[]): string {
  let out = strings[0];
  for (let i = 0; i < segments.length; i++)
    out += encodeURIComponent(String(segments[i])) + strings[i + 1];
  return out;
}

/** `?a=1&b=2` from the entries that have a value ('' and undefined are left out). */
export function query(params: Record<string, string | number | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

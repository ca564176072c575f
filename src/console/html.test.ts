import { describe, expect, it } from 'vitest';
import { escapeHtml, html, path, query, raw } from './html.js';

describe('html', () => {
  it('escapes every interpolated string, in text and in attributes', () => {
    const hostile = `<script>alert("x")</script>' onmouseover='y' \`z\` & more`;
    // prettier-ignore
    const out = html`<p title="${hostile}" data-x='${hostile}'>${hostile}</p>`.text;
    expect(out).not.toContain('<script>');
    expect(out).toBe(
      '<p title="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39; onmouseover=&#39;y&#39; &#96;z&#96; &amp; more"' +
        " data-x='&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39; onmouseover=&#39;y&#39; &#96;z&#96; &amp; more'>" +
        '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39; onmouseover=&#39;y&#39; &#96;z&#96; &amp; more</p>',
    );
  });

  it('replaces control characters but keeps tab, newline and carriage return', () => {
    expect(escapeHtml('a\u0000b\u0007c\u001bd\u007fe\u0085f\tg\nh\ri')).toBe(
      'a\ufffdb\ufffdc\ufffdd\ufffde\ufffdf\tg\nh\ri',
    );
  });

  it('nests fragments without escaping them twice, and raw() only where asked', () => {
    const inner = html`<b>${'<i>'}</b>`;
    expect(html`<p>${inner}${raw('<br>')}</p>`.text).toBe('<p><b>&lt;i&gt;</b><br></p>');
  });

  it('renders lists joined, numbers as they are, and nothing for false, null and undefined', () => {
    expect(html`${['<a>', html`<b></b>`, 3]}|${false}|${null}|${undefined}|${0}`.text).toBe(
      '&lt;a&gt;<b></b>3||||0',
    );
  });

  it('refuses an unquoted attribute value, which escaping cannot make safe', () => {
    const x = 'a onclick=alert(1)';
    expect(() => html`<a href=${x}></a>`).toThrow(/unquoted attribute/);
    // prettier-ignore
    expect(() => html`<a href = ${x}></a>`).toThrow(/unquoted attribute/);
  });

  it('squeezes the indentation of the template, never of the values', () => {
    const value = 'a\n   b';
    const out = html`<ul>
      <li>${value}</li>
    </ul>`.text;
    expect(out).toBe('<ul> <li>a\n   b</li> </ul>');
  });

  it('builds paths with data segments percent-encoded and query strings without empty values', () => {
    expect(path`/console/users/${'../x y?'}`).toBe('/console/users/..%2Fx%20y%3F');
    expect(query({ q: 'a&b', page: 2, empty: '', none: undefined })).toBe('?q=a%26b&page=2');
    expect(query({})).toBe('');
  });
});

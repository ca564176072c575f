import QRCode from 'qrcode';
import { describe, expect, it } from 'vitest';
import { qrCode, totpCard, totpFacts } from './totp.js';

const URI = 'otpauth://totp/ovpn-fleet%20acme:ann?issuer=ovpn-fleet%20acme&secret=JBSWY3DPEHPK3PXP';

describe('qrCode', () => {
  it("inlines qrcode's SVG rebuilt from its numbers, with a label", async () => {
    const svg = await QRCode.toString(URI, { type: 'svg', errorCorrectionLevel: 'M' });
    const out = qrCode(svg).text;
    const d = /<path stroke="#000000" d="([^"]+)"/.exec(svg)![1];
    expect(out).toContain('data-testid="totp-qr"');
    expect(out).toContain('role="img" aria-label="QR code of the otpauth URI"');
    expect(out).toContain(`<path stroke="#000000" d="${d}"></path>`);
    expect(out).toMatch(/viewBox="0 0 (\d+) \1"/);
  });

  it('shows no picture for anything else: a script, an event handler, a foreign element', () => {
    for (const svg of [
      '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 5 5" shape-rendering="crispEdges"><script>alert(1)</script></svg>',
      '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 5 5" shape-rendering="crispEdges"><path stroke="#000000" d="M1 1h1" onload="alert(1)"/></svg>',
      '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 5 5" shape-rendering="crispEdges"><path stroke="#000000" d="M1 1h1"/><foreignObject/></svg>',
      '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 5 5" shape-rendering="crispEdges"><path stroke="#000000" d="M1 1h1&quot;/>"/></svg>',
      '',
    ]) {
      const out = qrCode(svg).text;
      expect(out, svg).toContain('data-testid="totp-qr-missing"');
      expect(out).not.toContain('<svg');
    }
  });
});

describe('the TOTP status and card', () => {
  const asked = { asked: true, why: 'member of staff (auth.totp.groups)' };
  it('warns when the agents ask a user who is not enrolled', () => {
    const none = totpFacts({ enrolled: false, confirmed: false, recoveryCodesLeft: 0 }, asked).text;
    expect(none).toContain('badge-bad">not enrolled');
    expect(none).toContain('enrol them, or every connect is refused');
    const active = totpFacts({ enrolled: true, confirmed: true, recoveryCodesLeft: 1 }, asked).text;
    expect(active).toContain('badge-ok">active</span>, 1 recovery code left');
    expect(active).toContain('data-asked="yes"');
  });

  it('offers the confirm form only while an enrolment waits for it, reset once enrolled', () => {
    const card = (enrolled: boolean, confirmed: boolean) =>
      totpCard('ann', { enrolled, confirmed, recoveryCodesLeft: 10 }).text;
    expect(card(false, false)).not.toContain('data-form="totp-confirm"');
    expect(card(false, false)).not.toContain('data-action="totp-reset"');
    expect(card(true, false)).toContain('data-form="totp-confirm"');
    expect(card(true, false)).toContain('data-action="totp-reset"');
    expect(card(true, true)).not.toContain('data-form="totp-confirm"');
    expect(card(true, true)).toContain('Enrol again');
  });
});

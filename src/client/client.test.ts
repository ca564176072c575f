import { describe, expect, it } from 'vitest';
import { ControllerClient, isLoopback, parseEndpoint, parseEndpoints } from './client.js';
import { refusal } from '../testing.js';

describe('parseEndpoints', () => {
  it('takes several controllers in order, the CA for each https one, and refuses one twice', () => {
    const ca = '-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n';
    expect(
      parseEndpoints(
        ['https://ctl1:8443', 'unix:/run/ctl.sock', 'https://ctl2:8443'],
        '--controller',
        {
          ca,
        },
      ),
    ).toEqual([
      { kind: 'tcp', host: 'ctl1', port: 8443, tls: true, ca },
      { kind: 'unix', path: '/run/ctl.sock' },
      { kind: 'tcp', host: 'ctl2', port: 8443, tls: true, ca },
    ]);
    expect(() => parseEndpoints(['https://ctl1:8443', 'https://ctl1:8443/'])).toThrow(
      '--controller: https://ctl1:8443/ is given twice',
    );
    expect(() => parseEndpoints(['unix:/a'], '--controller', { ca })).toThrow(/^--ca: /);
    expect(() => parseEndpoints(['https://ctl1:8443', 'http://10.0.0.6:80'])).toThrow(
      /would send the token unencrypted/,
    );
  });
});

describe('parseEndpoint', () => {
  it('takes unix sockets, https anywhere, and plain HTTP on loopback', () => {
    expect(parseEndpoint('unix:/run/ctl.sock')).toEqual({ kind: 'unix', path: '/run/ctl.sock' });
    expect(parseEndpoint('https://ctl.example:8443')).toEqual({
      kind: 'tcp',
      host: 'ctl.example',
      port: 8443,
      tls: true,
    });
    expect(parseEndpoint('https://[2001:db8::1]:8443')).toMatchObject({
      host: '2001:db8::1',
      tls: true,
    });
    for (const text of [
      'http://127.0.0.1:8080',
      '127.0.0.1:8080',
      '127.3.4.5:1',
      'localhost:8080',
      'http://LOCALHOST:8080',
      '[::1]:8080',
      'http://[::ffff:127.0.0.1]:8080',
    ])
      expect(parseEndpoint(text), text).toMatchObject({ kind: 'tcp', tls: false });
  });

  it('refuses plain HTTP and schemeless HOST:PORT beyond loopback, naming --controller', () => {
    for (const text of [
      'http://192.0.2.1:8443',
      '192.0.2.1:8443',
      'ctl.example:80',
      '[2001:db8::1]:80',
      'http://[::ffff:192.0.2.1]:80',
      // Not an address, so it would go to the resolver.
      '127.999.0.1:80',
      'localhost.evil.example:80',
    ]) {
      const line = refusal(() => parseEndpoint(text));
      expect(line, text).toMatch(
        /^--controller: .* would send the token unencrypted: use https:\/\//,
      );
      expect(line, text).not.toContain('\n');
    }
    expect(refusal(() => parseEndpoint('192.0.2.1:8443'))).toContain('use https://192.0.2.1:8443');
  });

  it('pins a CA only on https', () => {
    const ca = Buffer.from('pem');
    expect(parseEndpoint('https://ctl.example:8443', '--controller', { ca })).toMatchObject({
      ca,
    });
    for (const text of ['unix:/run/ctl.sock', 'http://127.0.0.1:8080'])
      expect(refusal(() => parseEndpoint(text, '--controller', { ca }))).toMatch(/^--ca: /);
  });

  it('the client itself refuses a cleartext endpoint built by hand', () => {
    expect(
      refusal(
        () => new ControllerClient({ kind: 'tcp', host: '192.0.2.1', port: 80, tls: false }, 't'),
      ),
    ).toMatch(/^--controller: /);
  });
});

describe('isLoopback', () => {
  it('counts only literal loopback addresses and localhost', () => {
    expect(['127.0.0.1', '127.255.255.254', '::1', 'localhost'].map(isLoopback)).toEqual([
      true,
      true,
      true,
      true,
    ]);
    expect(['128.0.0.1', '127.0.0', '127.0.0.256', '::2', 'localhost.'].map(isLoopback)).toEqual([
      false,
      false,
      false,
      false,
      false,
    ]);
  });
});

import { describe, expect, it } from 'vitest';
import { parseListen } from './listen.js';
import { refusal } from '../testing.js';

describe('parseListen', () => {
  it('listens in clear on loopback only, and anywhere with TLS', () => {
    expect(parseListen('127.0.0.1:8080', false)).toMatchObject({ tls: false });
    expect(parseListen('0.0.0.0:8443', true)).toMatchObject({ host: '0.0.0.0', tls: true });
    expect(refusal(() => parseListen('0.0.0.0:8443', false))).toMatch(/^--listen: /);
  });
});

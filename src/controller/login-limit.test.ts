/** The login limiter's keys: addresses by host (IPv6 /64), accounts kept through address churn. */
import { describe, expect, it } from 'vitest';
import { LoginLimiter, addressKey } from './login-limit.js';
import { ManualClock } from './testing.js';

describe('addressKey', () => {
  it('keeps IPv4, takes an IPv6 address by its /64, and an IPv4-mapped one as IPv4', () => {
    expect(addressKey('203.0.113.5')).toBe('203.0.113.5');
    expect(addressKey('2001:db8:1:2::a')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:0db8:0001:0002:ffff:1:2:3')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(addressKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(addressKey('::ffff:203.0.113.5')).toBe('203.0.113.5');
    expect(addressKey('::FFFF:cb00:7105')).toBe('203.0.113.5');
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
  });
});

describe('LoginLimiter', () => {
  it('counts every address of one IPv6 /64, and IPv4-mapped addresses with their IPv4 one', () => {
    const limiter = new LoginLimiter(new ManualClock(), { perAddress: 3 });
    for (const a of ['2001:db8:1:2::a', '2001:db8:1:2::b', '2001:db8:1:2:ffff::c'])
      expect(limiter.begin(`n-${a}`, a, false).retryAfter).toBe(0);
    expect(limiter.begin('other', '2001:db8:1:2::d', false).retryAfter).toBeGreaterThan(0);
    expect(limiter.begin('other', '2001:db8:1:3::d', false).retryAfter).toBe(0);
    for (const a of ['198.51.100.7', '::ffff:198.51.100.7', '198.51.100.7'])
      limiter.begin(`m-${a}`, a, false);
    expect(limiter.begin('other', '::ffff:198.51.100.7', false).retryAfter).toBeGreaterThan(0);
  });

  it("does not forget an account's failures when a flood of addresses and names churns the keys", () => {
    const limiter = new LoginLimiter(new ManualClock(), { perAddress: 1_000_000 });
    for (let i = 0; i < 5; i++) limiter.begin('vic', `192.0.2.${i}`, true);
    for (let i = 0; i < 12_000; i++)
      limiter.begin(`made-up-${i}`, `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, false);
    expect(limiter.begin('vic', '198.51.100.1', true).retryAfter).toBe(900);
    // An unknown name has its own count too (the answers say nothing of who exists).
    for (let i = 0; i < 5; i++) limiter.begin('ghost', '192.0.2.9', false);
    expect(limiter.begin('ghost', '192.0.2.9', false).retryAfter).toBe(900);
    expect(limiter.begin('ghost2', '192.0.2.9', false).retryAfter).toBe(0);
  });
});

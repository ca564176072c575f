import { afterEach, describe, expect, it, vi } from 'vitest';
import { escapeControl, printJson, printTable, say, warn } from './output.js';

const ESC = '\u001b';
const evil = `mallory${ESC}]0;owned\u0007${ESC}[2J\r\u009b31m\u007f\u202egnp.exe`;

function captured(stream: 'stdout' | 'stderr', fn: () => void): string {
  let out = '';
  const spy = vi.spyOn(process[stream], 'write').mockImplementation((chunk) => {
    out += String(chunk);
    return true;
  });
  try {
    fn();
  } finally {
    spy.mockRestore();
  }
  return out;
}

afterEach(() => vi.restoreAllMocks());

describe('escapeControl', () => {
  it('shows C0, DEL, C1 and bidi controls as escapes and leaves the rest alone', () => {
    expect(escapeControl(evil)).toBe(
      'mallory\\x1b]0;owned\\x07\\x1b[2J\\x0d\\x9b31m\\x7f\\u202egnp.exe',
    );
    expect(escapeControl('tab\there\nnext')).toBe('tab\\x09here\\x0anext');
    expect(escapeControl('ålice 10.0.0.1 "quoted" \\ ok')).toBe('ålice 10.0.0.1 "quoted" \\ ok');
  });
});

describe('printing', () => {
  it('escapes every table cell, so columns stay aligned and the terminal untouched', () => {
    const out = captured('stdout', () =>
      printTable(
        [
          { user: evil, server: 'vpn11', groups: [`a${ESC}[1m`, 'b'] },
          { user: 'bob', server: `x\ny`, groups: [] },
        ],
        ['user', 'server', 'groups'],
      ),
    );
    expect(out).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/);
    const lines = out.trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[1]).toContain('mallory\\x1b]0;owned');
    expect(lines[1]).toContain('a\\x1b[1m,b');
    expect(lines[2]).toContain('x\\x0ay');
    expect(lines[1].indexOf('vpn11')).toBe(lines[0].indexOf('SERVER'));
  });

  it('escapes one-line messages on both streams', () => {
    expect(captured('stdout', () => say(`${evil}: draining`))).toBe(
      `${escapeControl(evil)}: draining\n`,
    );
    expect(captured('stderr', () => warn(`a\nb${ESC}`))).toBe('a\\x0ab\\x1b\n');
  });

  it('keeps --json valid and lossless while nothing raw reaches the terminal', () => {
    const value = { sessions: [{ user: evil, since: '2024-01-01T00:00:00Z' }] };
    const out = captured('stdout', () => printJson(value));
    expect(out).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/);
    expect(JSON.parse(out)).toEqual(value);
  });
});

import { describe, expect, it } from 'vitest';
import { type CsvRules, parseUserCsv } from './csv.js';

/** Names starting with "bad" and groups other than staff/dba are refused. */
const rules: CsvRules = {
  nameProblem: (name) => (name.startsWith('bad') ? `"${name}" is not allowed` : undefined),
  groupProblem: (group) =>
    ['staff', 'dba'].includes(group) ? undefined : `unknown group "${group}"`,
};

describe('parseUserCsv', () => {
  it('reads rows with or without a header, skipping blank and comment lines, CRLF or LF', () => {
    const text =
      '# exported 2026-03-01\r\nName,Groups\r\n\r\nann,staff;dba\r\n  bob , \r\ncid,;staff;\r\n';
    expect(parseUserCsv(text, 'people.csv', rules)).toEqual({
      users: [
        { name: 'ann', groups: ['staff', 'dba'] },
        { name: 'bob', groups: [] },
        { name: 'cid', groups: ['staff'] },
      ],
    });
    expect(parseUserCsv('ann\nbob,dba\n', 'people.csv', rules).users).toEqual([
      { name: 'ann', groups: [] },
      { name: 'bob', groups: ['dba'] },
    ]);
  });

  it('treats a later row called "name" as a user, not as a header', () => {
    expect(parseUserCsv('ann\nname\n', 'f.csv', rules).users?.map((u) => u.name)).toEqual([
      'ann',
      'name',
    ]);
  });

  it.each([
    [
      'too many fields',
      'name,groups\nann,staff,extra\n',
      'a.csv:2',
      'expected "name,groups", got 3 fields',
    ],
    [
      'a refused name',
      '# header follows\nname,groups\nann,staff\nbad1,staff\n',
      'a.csv:4',
      '"bad1" is not allowed',
    ],
    ['an unknown group', 'ann,staff\n\nbob,staff;ops\n', 'a.csv:3', 'unknown group "ops"'],
    ['the name before the groups', 'bad2,ops\n', 'a.csv:1', '"bad2" is not allowed'],
  ])('names file:line of the first bad row: %s', (_, text, at, message) => {
    expect(parseUserCsv(text, 'a.csv', rules)).toEqual({ error: { at, message } });
  });

  it('stops at the first bad row', () => {
    expect(parseUserCsv('bad1\nbad2\n', 'a.csv', rules).error?.at).toBe('a.csv:1');
  });

  it('refuses a file without users, naming the file', () => {
    for (const text of ['', 'name,groups\n', '# nothing\n\n'])
      expect(parseUserCsv(text, 'empty.csv', rules)).toEqual({
        error: { at: 'empty.csv', message: 'no users in file' },
      });
  });
});

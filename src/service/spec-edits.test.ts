import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Conflict, InputError } from '../errors.js';
import { parseSpecText } from '../spec/validate.js';
import { type TempFleet, tempFleetDir } from '../testing.js';
import { specPath } from './layout.js';

let t: TempFleet;
beforeEach(async () => {
  t = await tempFleetDir();
});
afterEach(async () => await t.cleanup());

const specText = () => readFileSync(specPath(t.dir), 'utf8');

describe('spec edits', () => {
  it('adds a group as one new line after the last, keeping the rest of the file byte for byte', async () => {
    const before = specText();
    await t.fleet.specEdits.addGroup('auditors', 'read-only "guests"');
    const after = specText();
    const added = after.split('\n').filter((line) => !before.split('\n').includes(line));
    expect(added).toEqual(['  - { name: auditors, description: "read-only \\"guests\\"" }']);
    expect(after.replace(`${added[0]}\n`, '')).toBe(before);
    expect(statSync(specPath(t.dir)).mode & 0o777).toBe(0o600);
    expect((await t.fleet.store.auditLog(1))[0]).toMatchObject({
      action: 'group.add',
      subject: 'auditors',
      at: t.clock.now().toISOString(),
    });
  });

  it('falls back to re-serialising a flow-style groups list, still valid and 0600', async () => {
    const flow = 'groups: [{ name: staff }, { name: engineering }, { name: dba }]\n';
    writeFileSync(specPath(t.dir), specText().replace(/^groups:\n(?: {2}- .*\n)+/m, flow));
    expect(specText()).toContain(flow);
    await t.fleet.specEdits.addGroup('ops');
    const groups = parseSpecText(specText()).spec?.groups.map((g) => g.name);
    expect(groups).toEqual(['staff', 'engineering', 'dba', 'ops']);
    expect(statSync(specPath(t.dir)).mode & 0o777).toBe(0o600);
  });

  it('refuses a bad or existing group name and leaves the file alone', async () => {
    const before = specText();
    await expect(t.fleet.specEdits.addGroup('Ops')).rejects.toThrow(InputError);
    await expect(t.fleet.specEdits.addGroup('staff')).rejects.toThrow(Conflict);
    expect(specText()).toBe(before);
  });

  it('lists groups with their member counts', async () => {
    await t.fleet.users.add([
      { name: 'ann', groups: ['staff', 'dba'] },
      { name: 'bob', groups: ['staff'] },
    ]);
    expect((await t.fleet.specEdits.listGroups()).map((g) => [g.name, g.members])).toEqual([
      ['staff', 2],
      ['engineering', 0],
      ['dba', 1],
    ]);
  });

  it('validates fleet.yaml against the addresses the store holds', async () => {
    expect((await t.fleet.specEdits.validate()).errors).toEqual([]);
    await t.fleet.users.add([{ name: 'ann' }, { name: 'bob' }, { name: 'cid' }]);
    writeFileSync(
      specPath(t.dir),
      specText().replace(/ipv4: 10\.200\.0\.0\/16/, 'ipv4: 10.200.0.0/30'),
    );
    const errors = (await t.fleet.specEdits.validate()).errors;
    expect(errors.map((e) => e.path)).toContain('pools.ipv4');
  });
});

/**
 * fleet.yaml as the operator's file: checked against the store, and edited as text so that
 * what the operator wrote (layout, comments) survives the tool's edits.
 */
import { readFileSync } from 'node:fs';
import { type Document, isNode, isSeq, parseDocument } from 'yaml';
import { Conflict, InputError, SpecError } from '../errors.js';
import { type Validation, parseSpecText } from '../spec/validate.js';
import { writeFileAtomic } from '../sys/files.js';
import { type ServiceContext, poolsOf } from './context.js';
import { SPEC_FILE_MODE, specPath } from './layout.js';

export class SpecEdits {
  constructor(private readonly ctx: ServiceContext) {}

  /** Validates fleet.yaml against the store's contents (the pool must hold every user). */
  async validate(): Promise<Validation> {
    const text = readFileSync(specPath(this.ctx.dir), 'utf8');
    return parseSpecText(text, {
      addressesHeld: await this.ctx.store.addressesHeld(
        poolsOf(this.ctx.spec),
        this.ctx.clock.now(),
      ),
    });
  }

  async addGroup(name: string, description?: string): Promise<void> {
    if (!/^[a-z][a-z0-9-]{0,30}$/.test(name)) {
      throw new InputError(
        'group',
        `"${name}" is not a valid group name: lower-case letters, digits and "-", starting with a letter`,
      );
    }
    if (this.ctx.spec.groups.some((g) => g.name === name))
      throw new Conflict(`group ${name} already exists`);
    const path = specPath(this.ctx.dir);
    const original = readFileSync(path, 'utf8');
    const doc = parseDocument(original);
    const entry = description ? { name, description } : { name };
    let text = appendToBlockSequence(
      original,
      doc,
      'groups',
      `{ name: ${name}${description ? `, description: ${JSON.stringify(description)}` : ''} }`,
    );
    if (text === undefined) {
      if (doc.has('groups')) doc.addIn(['groups'], doc.createNode(entry, { flow: true }));
      else doc.set('groups', [entry]);
      text = doc.toString();
    }
    const v = parseSpecText(text);
    if (!v.spec) throw new SpecError(v.errors, path);
    writeFileAtomic(path, text, SPEC_FILE_MODE);
    await this.ctx.store.audit({
      at: this.ctx.clock.now().toISOString(),
      actor: this.ctx.actor,
      action: 'group.add',
      subject: name,
    });
  }

  async listGroups(): Promise<{ name: string; description?: string; members: number }[]> {
    const counts = new Map<string, number>();
    for (const u of await this.ctx.store.listUsers())
      for (const g of u.groups) counts.set(g, (counts.get(g) ?? 0) + 1);
    return this.ctx.spec.groups.map((g) => ({ ...g, members: counts.get(g.name) ?? 0 }));
  }
}

/**
 * Appends `item` to the top-level block sequence `key` as a text edit, so the rest of the file
 * keeps its layout (re-serialising the document would re-space every flow map and comment).
 * Undefined when the sequence is missing, empty or written in flow style.
 */
export function appendToBlockSequence(
  text: string,
  doc: Document,
  key: string,
  item: string,
): string | undefined {
  const seq = doc.get(key, true);
  if (!isSeq(seq) || seq.flow || seq.items.length === 0) return undefined;
  const first = seq.items[0];
  const last = seq.items[seq.items.length - 1];
  if (!isNode(first) || !isNode(last) || !first.range || !last.range) return undefined;
  const lineStart = text.lastIndexOf('\n', first.range[0] - 1) + 1;
  const dash = text.slice(lineStart, first.range[0]);
  if (!/^ *- +$/.test(dash)) return undefined;
  const eol = text.indexOf('\n', last.range[1]);
  const at = eol === -1 ? text.length : eol;
  return `${text.slice(0, at)}\n${dash}${item}${text.slice(at)}`;
}

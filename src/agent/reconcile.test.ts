import { describe, expect, it } from 'vitest';
import { planRoutes } from './reconcile.js';

describe('planRoutes', () => {
  it('adds the routes of connected users that are missing', () => {
    const p = planRoutes(
      ['10.200.0.2'],
      new Set(['10.200.0.2', '10.200.0.3', 'fd00::3']),
      new Set(),
    );
    expect(p.add).toEqual(['10.200.0.3', 'fd00::3']);
    expect(p.remove).toEqual([]);
  });

  it('removes an orphaned route only when it was orphaned at the previous pass too', () => {
    const first = planRoutes(['10.200.0.9', '10.200.0.2'], new Set(['10.200.0.2']), new Set());
    expect(first.remove).toEqual([]);
    expect([...first.orphans]).toEqual(['10.200.0.9']);
    const second = planRoutes(['10.200.0.9', '10.200.0.2'], new Set(['10.200.0.2']), first.orphans);
    expect(second.remove).toEqual(['10.200.0.9']);
  });

  it('keeps a route whose session showed up in between', () => {
    const first = planRoutes(['10.200.0.9'], new Set(), new Set());
    const second = planRoutes(['10.200.0.9'], new Set(['10.200.0.9']), first.orphans);
    expect(second.remove).toEqual([]);
    expect(second.orphans.size).toBe(0);
  });
});

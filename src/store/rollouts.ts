/** The controller's rolling restarts of OpenVPN and each server's restart generation. */
import { NotFound } from '../errors.js';
import { insertAudit } from './audit.js';
import type { Sql } from './sql.js';
import type { AuditEntry, RolloutRecord } from './types.js';

interface RolloutRow {
  id: number;
  strategy: RolloutRecord['strategy'];
  status: RolloutRecord['status'];
  started_by: string;
  started_at: string;
  updated_at: string;
  steps: string;
  detail: string | null;
}

function toRollout(r: RolloutRow): RolloutRecord {
  return {
    id: r.id,
    strategy: r.strategy,
    status: r.status,
    startedBy: r.started_by,
    startedAt: r.started_at,
    updatedAt: r.updated_at,
    steps: JSON.parse(r.steps) as RolloutRecord['steps'],
    ...(r.detail !== null ? { detail: r.detail } : {}),
  };
}

export async function latestRollout(sql: Sql): Promise<RolloutRecord | undefined> {
  const row = await sql.get<RolloutRow>('SELECT * FROM rollouts ORDER BY id DESC LIMIT 1');
  return row ? toRollout(row) : undefined;
}

/** Runs in the caller's write transaction: the rollout and its audit entries land together. */
export async function saveRollout(
  sql: Sql,
  rollout: Omit<RolloutRecord, 'id'> & { id?: number },
  audit: AuditEntry[],
): Promise<RolloutRecord> {
  const values = [
    rollout.strategy,
    rollout.status,
    rollout.startedBy,
    rollout.startedAt,
    rollout.updatedAt,
    JSON.stringify(rollout.steps),
    rollout.detail ?? null,
  ];
  let row: RolloutRow | undefined;
  if (rollout.id === undefined) {
    row = await sql.get<RolloutRow>(
      `INSERT INTO rollouts (strategy, status, started_by, started_at, updated_at, steps, detail)
       VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING *`,
      values,
    );
  } else {
    row = await sql.get<RolloutRow>(
      `UPDATE rollouts SET strategy = ?, status = ?, started_by = ?, started_at = ?,
         updated_at = ?, steps = ?, detail = ? WHERE id = ? RETURNING *`,
      [...values, rollout.id],
    );
    if (!row) throw new NotFound(`no rollout ${rollout.id}`);
  }
  for (const e of audit) await insertAudit(sql, e);
  return toRollout(row!);
}

export async function restartGenerations(sql: Sql): Promise<Map<string, number>> {
  const rows = await sql.all<{ server: string; generation: number }>(
    'SELECT server, generation FROM restart_generations',
  );
  return new Map(rows.map((r) => [r.server, r.generation]));
}

export async function setRestartGeneration(
  sql: Sql,
  server: string,
  generation: number,
): Promise<void> {
  await sql.run(
    `INSERT INTO restart_generations (server, generation) VALUES (?, ?)
     ON CONFLICT (server) DO UPDATE SET generation = excluded.generation`,
    [server, generation],
  );
}

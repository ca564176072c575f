/** `/v1/audit`: the audit log, filtered, paged, or exported as JSON lines or CSV. */
import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { AuditEntry, AuditQuery } from '../../api/index.js';
import type { StoredAuditEntry } from '../../store/types.js';
import { AUDIT_CSV_HEADER, auditCsvRow, auditJsonLine } from '../audit-format.js';
import { type AuditRequest, auditRequestOf } from '../query.js';
import * as S from '../schemas.js';
import type { ControllerState } from '../state.js';

/** Rows read per query while exporting: the store is synchronous, so each read is short. */
const EXPORT_PAGE = 1000;

export function auditRoutes(app: FastifyInstance, state: ControllerState): void {
  app.get<{ Querystring: AuditQuery }>(
    '/v1/audit',
    {
      config: { auth: 'viewer' },
      schema: {
        summary:
          'the audit log, newest first: filter by actor, user, kind (action or prefix) and time; page with before=<last id>; format=jsonl or csv downloads it',
        tags: ['audit'],
        querystring: S.auditQuery,
        produces: ['application/json', 'application/x-ndjson', 'text/csv'],
        response: { 200: { type: 'array', items: S.auditSchema }, ...S.errorResponses },
      },
    },
    async (req, reply) => {
      const request = auditRequestOf(req.query);
      if (request.format === 'json') {
        const entries: AuditEntry[] = await state.store.auditQuery({
          ...request.filter,
          limit: request.limit ?? 100,
        });
        return reply.send(entries);
      }
      const csv = request.format === 'csv';
      const stamp = state.now().toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '');
      return reply
        .type(csv ? 'text/csv; charset=utf-8' : 'application/x-ndjson; charset=utf-8')
        .header(
          'content-disposition',
          `attachment; filename="audit-${stamp}.${csv ? 'csv' : 'jsonl'}"`,
        )
        .header('cache-control', 'no-store')
        .header('x-content-type-options', 'nosniff')
        .send(
          Readable.from(
            exportLines(
              state,
              request,
              csv ? auditCsvRow : auditJsonLine,
              csv ? AUDIT_CSV_HEADER : undefined,
            ),
          ),
        );
    },
  );
}

/**
 * The export, page by page along the id cursor: a large log is never held in memory at once,
 * and the stream's back-pressure paces the reads. Entries added meanwhile have higher ids than
 * the first page and are not included: the export is the log as it was when it started.
 */
async function* exportLines(
  state: ControllerState,
  request: AuditRequest,
  line: (e: StoredAuditEntry) => string,
  header: string | undefined,
): AsyncGenerator<string> {
  if (header !== undefined) yield `${header}\r\n`;
  const eol = header !== undefined ? '\r\n' : '\n';
  let left = request.limit ?? Infinity;
  let before = request.filter.before;
  while (left > 0) {
    const page = await state.store.auditQuery({
      ...request.filter,
      ...(before !== undefined ? { before } : {}),
      limit: Math.min(EXPORT_PAGE, left),
    });
    if (page.length === 0) return;
    yield page.map((e) => line(e) + eol).join('');
    left -= page.length;
    before = page[page.length - 1].id;
    // Let other requests in between pages.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

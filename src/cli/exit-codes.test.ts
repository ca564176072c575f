import { describe, expect, it } from 'vitest';
import { ManagementError } from '../agent/management.js';
import { ApiError, ControllerUnreachable } from '../client/client.js';
import { httpStatusOf } from '../controller/http.js';
import {
  CommandError,
  Conflict,
  InputError,
  NeedsPrivilege,
  NotFound,
  SpecError,
  Timeout,
} from '../errors.js';
import { describeError, exitCodeOf } from './exit-codes.js';

describe('errors at the edges', () => {
  const cases: [Error, number, number][] = [
    [new InputError('name', 'bad'), 2, 400],
    [new SpecError([{ path: 'fleet', message: 'bad' }]), 2, 422],
    [new NotFound('no user named x'), 3, 404],
    [new Conflict('exists'), 4, 409],
    [new CommandError(['nft', '-f', 'x'], 1, 'syntax error'), 5, 500],
    [new ManagementError('no such client', 'client-kill 7'), 6, 500],
    [new Timeout('timed out after 3 s waiting for x'), 7, 504],
    [new NeedsPrivilege('the lab needs root'), 77, 500],
    [new ControllerUnreachable('unix:/x', 'ENOENT'), 1, 500],
    [new Error('a bug'), 70, 500],
  ];

  it('maps each domain error to one exit code and one HTTP status', () => {
    expect(cases.map(([e]) => exitCodeOf(e))).toEqual(cases.map(([, code]) => code));
    expect(cases.map(([e]) => httpStatusOf(e))).toEqual(cases.map(([, , status]) => status));
  });

  it("gives an API error the exit code of the controller's status", () => {
    expect([400, 404, 409, 422, 504, 500].map((s) => exitCodeOf(new ApiError(s, 'x')))).toEqual([
      2, 3, 4, 2, 7, 1,
    ]);
  });

  it('shows an expected error as its message and a bug with its stack', () => {
    expect(describeError(new NotFound('no user named x'))).toEqual({
      line: 'no user named x',
      exitCode: 3,
    });
    expect(describeError(new TypeError('boom')).line).toMatch(/^internal error: TypeError: boom/);
  });
});

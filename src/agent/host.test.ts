/** The agent's HTTP link to its controllers (controllerLink), against a small loopback server. */
import { createServer, type Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { ControllerClient, controllerSet, parseEndpoints } from '../client/client.js';
import { CLIENT_REASONS } from './connect-auth.js';
import { controllerLink } from './host.js';

let server: Server | undefined;
afterEach(async () => {
  await new Promise((r) => server?.close(r));
  server = undefined;
});

/** A controller that answers every request with `status` and `body`. */
async function controllerAnswering(status: number, body: string): Promise<string> {
  server = createServer((_req, res) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(body);
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

function linkTo(url: string) {
  const set = controllerSet(parseEndpoints([url]));
  const link = controllerLink(
    new ControllerClient(set, 't', 5000),
    new ControllerClient(set, 't', 5000),
  );
  return { link, close: () => set.close() };
}

describe('controllerLink auth.wait', () => {
  it('refuses the client at once when no controller knows the sign-in (404)', async () => {
    const { link, close } = linkTo(
      await controllerAnswering(404, '{"error":"no sign-in abc in progress"}'),
    );
    try {
      expect(await link.auth!.wait('abc')).toEqual({ ok: false, reason: CLIENT_REASONS.lost });
    } finally {
      close();
    }
  });

  it('keeps waiting after a 204 and takes the outcome of a 200', async () => {
    const { link, close } = linkTo(await controllerAnswering(204, ''));
    try {
      expect(await link.auth!.wait('abc')).toBeUndefined();
    } finally {
      close();
    }
    await new Promise((r) => server?.close(r));
    const second = linkTo(await controllerAnswering(200, '{"ok":true,"groups":["staff"]}'));
    try {
      expect(await second.link.auth!.wait('abc')).toEqual({ ok: true, groups: ['staff'] });
    } finally {
      second.close();
    }
  });

  it('throws (the agent asks again) when the controller fails (500)', async () => {
    const { link, close } = linkTo(await controllerAnswering(500, '{"error":"boom"}'));
    try {
      await expect(link.auth!.wait('abc')).rejects.toThrow('controller answered 500');
    } finally {
      close();
    }
  });
});

/**
 * HTTPS requests to a server whose certificate comes from a CA of our choosing (a company CA in
 * front of the identity provider, the lab's test provider), in the shape openid-client's
 * `customFetch` takes.
 */
import { request as httpsRequest } from 'node:https';
import { rootCertificates } from 'node:tls';
import type { CustomFetch, FetchBody } from 'openid-client';

/**
 * fetch for openid-client that trusts `ca` besides the system's CAs. Node's global fetch
 * (undici) takes no CA option and NODE_EXTRA_CA_CERTS is read only at start, so the provider's
 * requests go through node:https with the CA list; redirects are not followed, as openid-client
 * asks (`redirect: 'manual'`).
 */
export function fetchTrusting(ca: string): CustomFetch {
  const cas = [...rootCertificates, ca];
  return (url, options) =>
    new Promise<Response>((resolve, reject) => {
      const target = new URL(url);
      if (target.protocol !== 'https:') {
        reject(new Error(`${target.origin}: the identity provider must be reached over https`));
        return;
      }
      const req = httpsRequest(
        target,
        { method: options.method, headers: options.headers, ca: cas, signal: options.signal },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const headers = new Headers();
            for (const [k, v] of Object.entries(res.headers))
              for (const one of Array.isArray(v) ? v : v === undefined ? [] : [v])
                headers.append(k, one);
            const status = res.statusCode ?? 502;
            const body = status === 204 || status === 304 ? null : Buffer.concat(chunks);
            resolve(new Response(body, { status, headers }));
          });
        },
      );
      req.on('error', reject);
      void bodyBytes(options.body).then((bytes) => req.end(bytes), reject);
    });
}

/** openid-client's request bodies are forms and JSON: strings, URLSearchParams, bytes. */
async function bodyBytes(body: FetchBody): Promise<Buffer | undefined> {
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'string') return Buffer.from(body);
  if (body instanceof URLSearchParams) return Buffer.from(body.toString());
  if (body instanceof ArrayBuffer) return Buffer.from(body);
  if (body instanceof Uint8Array) return Buffer.from(body);
  return Buffer.from(await new Response(body).arrayBuffer());
}

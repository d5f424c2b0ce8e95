// A real OAuth 2.0 authorization server (oidc-provider) on loopback, for keyway's end-to-end tests.
//
// Usage:  node tests/authserver/server.mjs [--port N] [--config JSON]
//   or    KEYWAY_AUTHSERVER_PORT=N KEYWAY_AUTHSERVER_CONFIG=JSON node tests/authserver/server.mjs
// (the command-line wins; port 0 or none = any free port). tests/authserver.py passes the
// configuration through the environment so client secrets never show in `ps`.
//
// Configuration (JSON):
//   {
//     "clients": [{"client_id": "...", "client_secret": "...", "redirect_uris": ["..."],
//                  "token_endpoint_auth_method": "client_secret_basic"}],   // optional, either
//                                                 // way client_secret_post works as well
//     "access_token_ttl": 3600,       // seconds, optional
//     "refresh_token_ttl": 1209600,   // seconds, optional
//     "scopes": ["repo"],             // optional, added to openid offline_access read_api api
//     "refresh_tokens": "offline_access"   // or "always": see below
//   }
//
// When listening it prints ONE line on stdout:
//   {"ready": true, "port": N, "issuer": "http://127.0.0.1:N"}
// (oidc-provider's own notices also go to stdout/stderr; look for the line starting {"ready").
//
// Behaviour worth knowing (oidc-provider 9):
// * PKCE is required for every client; only S256 exists in this version (`plain` is refused at
//   the authorization endpoint with invalid_request).
// * refresh_tokens "offline_access" (default, the OpenID Connect rule): a refresh token is issued
//   only when the authorization request carried scope offline_access AND prompt=consent —
//   without prompt=consent oidc-provider silently drops offline_access. "always": every code
//   exchange also returns a refresh token (like GitLab / GitHub App user tokens).
// * Refresh tokens rotate on every use; presenting a rotated (consumed) refresh token again
//   answers invalid_grant and revokes the whole grant (as does replaying an authorization code).
// * redirect_uri must be sent (no omission even with a single registered URI) and must match a
//   registered URI exactly.
// * Nothing here logs tokens. Do not run it with DEBUG=oidc-provider:* in CI.

import * as crypto from 'node:crypto';
import * as http from 'node:http';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const HOST = '127.0.0.1';
const BASE_SCOPES = ['openid', 'offline_access', 'read_api', 'api'];
const AUTH_METHODS = new Set(['client_secret_basic', 'client_secret_post']);

function fail(message) {
  process.stderr.write(`authserver: ${message}\n`);
  process.exit(2);
}

function readOptions() {
  const { values } = parseArgs({
    options: { port: { type: 'string' }, config: { type: 'string' } },
    allowPositionals: false,
  });
  const portText = values.port ?? process.env.KEYWAY_AUTHSERVER_PORT ?? '0';
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`bad port ${portText}`);
  let config;
  try {
    config = JSON.parse(values.config ?? process.env.KEYWAY_AUTHSERVER_CONFIG ?? '{}');
  } catch (err) {
    fail(`configuration is not JSON: ${err.message}`);
  }
  return { port, config };
}

function positiveInt(value, fallback, name) {
  if (value === undefined || value === null) return fallback;
  if (!Number.isInteger(value) || value <= 0) fail(`${name} must be a positive integer`);
  return value;
}

function clientMetadata(client) {
  const known = new Set(['client_id', 'client_secret', 'redirect_uris', 'token_endpoint_auth_method']);
  const unknown = Object.keys(client).filter((key) => !known.has(key));
  if (unknown.length) fail(`unknown client keys: ${unknown.join(', ')}`);
  if (typeof client.client_id !== 'string' || !client.client_id) fail('client_id is required');
  if (typeof client.client_secret !== 'string' || !client.client_secret) fail('client_secret is required');
  if (!Array.isArray(client.redirect_uris) || !client.redirect_uris.length) fail('redirect_uris is required');
  const method = client.token_endpoint_auth_method ?? 'client_secret_basic';
  if (!AUTH_METHODS.has(method)) fail(`token_endpoint_auth_method must be one of ${[...AUTH_METHODS]}`);
  return {
    client_id: client.client_id,
    client_secret: client.client_secret,
    redirect_uris: client.redirect_uris,
    response_types: ['code'],
    grant_types: ['authorization_code', 'refresh_token'],
    // oidc-provider 9 accepts client_secret_basic and client_secret_post interchangeably for
    // a client registered with either one.
    token_endpoint_auth_method: method,
  };
}

function buildConfiguration(config) {
  const known = new Set(['clients', 'access_token_ttl', 'refresh_token_ttl', 'scopes', 'refresh_tokens', 'routes']);
  const unknown = Object.keys(config).filter((key) => !known.has(key));
  if (unknown.length) fail(`unknown configuration keys: ${unknown.join(', ')}`);
  const clients = (config.clients ?? []).map(clientMetadata);
  if (!clients.length) fail('at least one client is required');
  const accessTokenTTL = positiveInt(config.access_token_ttl, 3600, 'access_token_ttl');
  const refreshTokenTTL = positiveInt(config.refresh_token_ttl, 14 * 24 * 3600, 'refresh_token_ttl');
  const extraScopes = config.scopes ?? [];
  if (!Array.isArray(extraScopes) || extraScopes.some((s) => typeof s !== 'string' || !/^[\x21\x23-\x5B\x5D-\x7E]+$/.test(s))) {
    fail('scopes must be a list of scope tokens');
  }
  const refreshTokens = config.refresh_tokens ?? 'offline_access';
  if (!['offline_access', 'always'].includes(refreshTokens)) fail('refresh_tokens must be offline_access or always');

  // Optional endpoint paths, e.g. {"authorization": "/oauth/authorize", "token": "/oauth/token"}
  // so the server can stand where a provider's OAuth endpoints are (GitLab's paths).
  const routes = config.routes ?? {};
  const routeNames = new Set(['authorization', 'token', 'revocation', 'introspection', 'userinfo', 'jwks']);
  for (const [name, path] of Object.entries(routes)) {
    if (!routeNames.has(name) || typeof path !== 'string' || !path.startsWith('/')) fail(`bad route ${name}`);
  }

  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });

  return {
    clients,
    clientDefaults: {
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'RS256',
    },
    responseTypes: ['code'],
    routes,
    clientAuthMethods: [...AUTH_METHODS],
    // Non-OpenID scopes listed here are treated like OpenID scopes: asked for on the consent
    // page, recorded in the grant and echoed in the token response. Unlisted scopes are dropped
    // silently (no invalid_scope).
    scopes: [...new Set([...BASE_SCOPES, ...extraScopes])],
    claims: { openid: ['sub'] },
    pkce: { required: () => true }, // S256 is the only method oidc-provider 9 implements
    allowOmittingSingleRegisteredRedirectUri: false,
    features: {
      devInteractions: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: true },
    },
    async findAccount(_ctx, sub) {
      return { accountId: sub, async claims() { return { sub }; } };
    },
    async issueRefreshToken(_ctx, client, source) {
      if (!client.grantTypeAllowed('refresh_token')) return false;
      return refreshTokens === 'always' || source.scopes.has('offline_access');
    },
    async expiresWithSession(_ctx, source) {
      return refreshTokens !== 'always' && !source.scopes.has('offline_access');
    },
    rotateRefreshToken: true,
    ttl: {
      AccessToken: accessTokenTTL,
      AuthorizationCode: 60,
      IdToken: 3600,
      Grant: refreshTokenTTL,
      RefreshToken: refreshTokenTTL,
      Interaction: 3600,
      Session: 24 * 3600,
    },
    cookies: {
      keys: [crypto.randomBytes(32).toString('base64url')],
      // plain http on loopback: never mark cookies Secure (oidc-provider only does when the
      // request itself is https, which it never is here).
      long: { httpOnly: true, sameSite: 'lax', secure: false },
      short: { httpOnly: true, sameSite: 'lax', secure: false },
    },
    jwks: { keys: [{ ...privateKey.export({ format: 'jwk' }), kid: 'keyway-test', use: 'sig', alg: 'RS256' }] },
    clientBasedCORS: () => false,
    // Plain error page; never echo tokens (oidc-provider's default page only shows error codes).
    async renderError(ctx, out) {
      ctx.type = 'html';
      const esc = (v) => String(v).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
      ctx.body = `<!DOCTYPE html><html><head><title>oops</title></head><body><h1>oops! something went wrong</h1>`
        + `<pre>${Object.entries(out).map(([k, v]) => `${esc(k)}: ${esc(v)}`).join('\n')}</pre></body></html>`;
    },
  };
}

const { port, config } = readOptions();
const configuration = buildConfiguration(config);

// The issuer must contain the port, which with port 0 is known only after listen(): listen
// first, then build the provider and hand it the requests.
let handler = (_req, res) => {
  res.statusCode = 503;
  res.end('starting');
};
const server = http.createServer((req, res) => handler(req, res));
server.on('error', (err) => fail(`cannot listen: ${err.message}`));
server.listen(port, HOST, () => {
  const actual = server.address().port;
  const issuer = `http://${HOST}:${actual}`;
  const provider = new Provider(issuer, configuration);
  provider.on('server_error', (_ctx, err) => process.stderr.write(`authserver: server_error ${err.name}: ${err.message}\n`));
  handler = provider.callback();
  process.stdout.write(`${JSON.stringify({ ready: true, port: actual, issuer })}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections?.();
    process.exit(0);
  });
}

/**
 * Identity providers for tests, on loopback:
 *
 * - {@link startKeyServer}: a minimal issuer (discovery document and JWKS) whose keys the test controls,
 *   and which signs tokens with them (or with anything else) through `jose`. It can rotate keys, break its
 *   endpoints and count fetches.
 * - {@link startOidcProvider}: the real `oidc-provider` package, issuing client-credentials access tokens
 *   in JWT form with a roles claim.
 *
 * @module
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  type CryptoKey,
  exportJWK,
  generateKeyPair,
  type JWK,
  type JWTPayload,
  SignJWT,
} from "jose";
import Provider from "oidc-provider";

/** The audience tokens of these providers name by default. */
export const TEST_AUDIENCE = "https://publisher.test";

/** A signing key the key server publishes (or not). */
export interface TestSigningKey {
  readonly kid: string;
  readonly alg: string;
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
}

/** Creates a key pair for `alg` with the given key id. */
export async function aSigningKey(kid: string, alg = "RS256"): Promise<TestSigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return {
    kid,
    alg,
    privateKey,
    publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: "sig" },
  };
}

/** How an endpoint of the key server behaves. */
export type EndpointMode = "up" | "error" | "hang" | "huge";

/** A test issuer; see {@link startKeyServer}. */
export interface KeyServer extends AsyncDisposable {
  /** The issuer URL (`http://127.0.0.1:<port>/realms/test`). */
  readonly issuer: string;
  /** Keys served in the JWKS, in order; change it to rotate. */
  keys: TestSigningKey[];
  /** How the discovery document and the JWKS are served. */
  discoveryMode: EndpointMode;
  jwksMode: EndpointMode;
  /** Overrides of the discovery document's fields. */
  discoveryOverrides: Record<string, unknown>;
  /** How many times each was fetched. */
  readonly fetches: { discovery: number; jwks: number };
  /**
   * Signs claims: `iss`, `aud` ({@link TEST_AUDIENCE}), `sub`, `iat`, `exp` (+5 min) are filled in unless
   * given (`undefined` removes one). Signed with `options.key`, by default the first served key.
   */
  sign(claims?: Record<string, unknown>, options?: { key?: TestSigningKey; now?: number }): Promise<
    string
  >;
}

/** Starts a key server with one RS256 key, `k1`. */
export async function startKeyServer(): Promise<KeyServer> {
  const keys = [await aSigningKey("k1")];
  const hanging = new Set<AbortController>();
  const state = {
    keys,
    discoveryMode: "up" as EndpointMode,
    jwksMode: "up" as EndpointMode,
    discoveryOverrides: {} as Record<string, unknown>,
    fetches: { discovery: 0, jwks: 0 },
  };
  let issuer = "";
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const path = new URL(request.url).pathname;
    if (path === "/realms/test/.well-known/openid-configuration") {
      state.fetches.discovery++;
      return answer(state.discoveryMode, {
        issuer,
        jwks_uri: `${issuer}/protocol/openid-connect/certs`,
        ...state.discoveryOverrides,
      });
    }
    if (path === "/realms/test/protocol/openid-connect/certs") {
      state.fetches.jwks++;
      return answer(state.jwksMode, { keys: state.keys.map((key) => key.publicJwk) });
    }
    return new Response("not found", { status: 404 });
  });
  issuer = `http://127.0.0.1:${server.addr.port}/realms/test`;

  function answer(mode: EndpointMode, body: unknown): Response {
    switch (mode) {
      case "up":
        return Response.json(body);
      case "error":
        return new Response("unavailable", { status: 503 });
      case "huge":
        return Response.json({ ...body as object, padding: "x".repeat(1024 * 1024) });
      case "hang": {
        const controller = new AbortController();
        hanging.add(controller);
        const stream = new ReadableStream({
          start(c) {
            controller.signal.addEventListener("abort", () => c.close());
          },
        });
        return new Response(stream, { headers: { "content-type": "application/json" } });
      }
    }
  }

  return Object.assign(state, {
    issuer,
    async sign(
      claims: Record<string, unknown> = {},
      options: { key?: TestSigningKey; now?: number } = {},
    ) {
      const key = options.key ?? state.keys[0];
      if (key === undefined) throw new Error("the key server has no key to sign with");
      const iat = Math.floor((options.now ?? Date.now()) / 1000);
      const payload = Object.fromEntries(
        Object.entries({
          iss: issuer,
          aud: TEST_AUDIENCE,
          sub: "person-1",
          iat,
          exp: iat + 300,
          preferred_username: "Pat Person",
          realm_access: { roles: ["ig-approver"] },
          ...claims,
        }).filter(([, value]) => value !== undefined),
      ) as JWTPayload;
      return await new SignJWT(payload).setProtectedHeader({
        alg: key.alg,
        kid: key.kid,
        typ: "JWT",
      })
        .sign(key.privateKey);
    },
    async [Symbol.asyncDispose]() {
      for (const controller of hanging) controller.abort();
      await server.shutdown();
    },
  });
}

/** A running `oidc-provider`; see {@link startOidcProvider}. */
export interface OidcProvider extends AsyncDisposable {
  readonly issuer: string;
  /** A client-credentials access token (JWT) for the client `clientId`, its `sub`. */
  accessToken(clientId: string): Promise<string>;
}

/**
 * Starts `oidc-provider` on loopback with one confidential client per entry of `clients` (client id →
 * roles). Its client-credentials access tokens are JWTs for `audience`, signed RS256, with the roles in
 * `realm_access.roles` and the client id as `sub` and `preferred_username`.
 */
export async function startOidcProvider(
  clients: Record<string, readonly string[]>,
  audience = TEST_AUDIENCE,
): Promise<OidcProvider> {
  const key = await aSigningKey("oidc-provider-key");
  const signingJwk = {
    ...(await exportJWK(key.privateKey)),
    kid: key.kid,
    alg: "RS256",
    use: "sig",
  };
  const route: { handler?: (...args: unknown[]) => void } = {};
  const server: Server = createServer((req, res) => route.handler?.(req, res));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const secret = "client-secret-0123456789abcdef";
  const provider = new Provider(issuer, {
    clients: Object.keys(clients).map((clientId) => ({
      client_id: clientId,
      client_secret: secret,
      grant_types: ["client_credentials"],
      redirect_uris: [],
      response_types: [],
    })),
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => audience,
        getResourceServerInfo: () => ({
          scope: "",
          audience,
          accessTokenFormat: "jwt",
          jwt: { sign: { alg: "RS256" } },
        }),
        useGrantedResource: () => true,
      },
    },
    jwks: { keys: [signingJwk] },
    ttl: { ClientCredentials: 300 },
    extraTokenClaims: (_ctx: unknown, token: { clientId?: string }) => ({
      realm_access: { roles: [...clients[token.clientId ?? ""] ?? []] },
      preferred_username: token.clientId,
    }),
  });
  route.handler = provider.callback() as (...args: unknown[]) => void;
  return {
    issuer,
    async accessToken(clientId: string) {
      const response = await fetch(`${issuer}/token`, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          authorization: "Basic " + btoa(`${clientId}:${secret}`),
        },
        body: "grant_type=client_credentials",
      });
      const body = await response.json();
      if (response.status !== 200) throw new Error(`token request failed: ${JSON.stringify(body)}`);
      return body.access_token as string;
    },
    async [Symbol.asyncDispose]() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

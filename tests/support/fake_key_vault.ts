/**
 * A fake Azure Key Vault (and a fake Microsoft Entra token endpoint) served over HTTPS with a throw-away
 * certificate authority, for testing the Key Vault secret store without Azure.
 *
 * - `makeTestCertificates()` runs `openssl` to create a CA and a server certificate for `127.0.0.1` and
 *   `localhost` in a temporary directory. Clients trust the CA per client (for the Azure SDK:
 *   `tlsOptions: { ca }`), never process-wide.
 * - `startFakeKeyVault()` serves `GET /secrets/{name}[/{version}]` the way Key Vault does: a request without a
 *   bearer token gets the 401 challenge the SDK expects, names are case-insensitive (the stored casing comes
 *   back in `id`), an unknown name gets 404 with Key Vault's `SecretNotFound` error body, and the next
 *   requests can be made to fail with 500/503.
 * - It also answers `POST /{tenant}/oauth2/v2.0/token` (client credentials) and the OpenID discovery document,
 *   so a `ClientSecretCredential` pointed at it with `authorityHost` gets a token.
 *
 * @module
 */

/** A CA and a server certificate signed by it, as PEM strings. */
export interface TestCertificates {
  /** The CA certificate clients must trust. */
  readonly caCert: string;
  /** The server's certificate (for `127.0.0.1` and `localhost` unless asked otherwise). */
  readonly cert: string;
  /** The server's private key. */
  readonly key: string;
  /** The temporary directory holding the files; remove it with {@link removeTestCertificates}. */
  readonly directory: string;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** What {@link makeTestCertificates} certifies. */
export interface TestCertificateOptions {
  /** The server certificate's names, in openssl's form; by default `IP:127.0.0.1,DNS:localhost`. */
  readonly subjectAltName?: string;
}

/** Creates a test CA and a server certificate (for `127.0.0.1`/`localhost` by default) with `openssl`. */
export async function makeTestCertificates(
  options: TestCertificateOptions = {},
): Promise<TestCertificates> {
  const directory = await Deno.makeTempDir({ prefix: "fake_key_vault_tls_" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await openssl([
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "2",
    "-subj",
    "/CN=Fake Key Vault Test CA",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ], directory);
  await openssl([
    "req",
    ...ec,
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
    "-subj",
    "/CN=localhost",
  ], directory);
  await Deno.writeTextFile(
    `${directory}/server.ext`,
    [
      "basicConstraints=critical,CA:FALSE",
      "keyUsage=critical,digitalSignature",
      "extendedKeyUsage=serverAuth",
      `subjectAltName=${options.subjectAltName ?? "IP:127.0.0.1,DNS:localhost"}`,
      "",
    ].join("\n"),
  );
  await openssl([
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "server.pem",
    "-days",
    "2",
    "-extfile",
    "server.ext",
  ], directory);
  return {
    caCert: await Deno.readTextFile(`${directory}/ca.pem`),
    cert: await Deno.readTextFile(`${directory}/server.pem`),
    key: await Deno.readTextFile(`${directory}/server.key`),
    directory,
  };
}

/** Removes the files {@link makeTestCertificates} wrote. */
export async function removeTestCertificates(certificates: TestCertificates): Promise<void> {
  await Deno.remove(certificates.directory, { recursive: true });
}

/** One request the fake saw. */
export interface FakeKeyVaultRequest {
  readonly method: string;
  readonly path: string;
  readonly authorized: boolean;
}

/** A running fake Key Vault. */
export interface FakeKeyVault extends AsyncDisposable {
  /** `https://127.0.0.1:{port}`: the vault URL. */
  readonly url: string;
  /** A plain-HTTP twin of the vault (`http://127.0.0.1:{port}`), for showing the SDK refuses it. */
  readonly plainUrl: string;
  /** The bearer token the vault accepts (and the token endpoint issues). */
  readonly token: string;
  /** The tenant named in the challenge. */
  readonly tenantId: string;
  /** Every secret request (not token requests), in order. */
  readonly requests: readonly FakeKeyVaultRequest[];
  /** Secret requests that carried a valid token (what a cache saves). */
  readonly authorizedSecretRequests: number;
  /** Token endpoint requests. */
  readonly tokenRequests: number;
  /** Stores a secret under exactly this Key Vault name (lookups ignore case, as Key Vault's do). */
  setSecret(name: string, value: string): void;
  /** Removes every secret. */
  clear(): void;
  /** Makes the next `count` authorized secret requests fail with `status` (500 or 503, say). */
  failNext(status: number, count?: number): void;
  /** Stops both servers. */
  close(): Promise<void>;
}

/** Options for {@link startFakeKeyVault}. */
export interface FakeKeyVaultOptions {
  /** The TLS certificate and key (from {@link makeTestCertificates}). */
  readonly certificates: TestCertificates;
  /** The bearer token to accept. */
  readonly token?: string;
  /** The tenant to name in the challenge. */
  readonly tenantId?: string;
  /** Client id and secret the token endpoint accepts. */
  readonly client?: { readonly id: string; readonly secret: string };
}

const KEY_VAULT_NAME = /^[0-9A-Za-z-]{1,127}$/;

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
  });
}

function keyVaultError(status: number, code: string, message: string): Response {
  return json(status, { error: { code, message } });
}

/** Starts a fake Key Vault on `127.0.0.1` over HTTPS (and a plain-HTTP twin for refusal tests). */
export function startFakeKeyVault(options: FakeKeyVaultOptions): FakeKeyVault {
  const token = options.token ?? "fake-key-vault-token";
  const tenantId = options.tenantId ?? "00000000-0000-0000-0000-00000000feed";
  const secrets = new Map<string, { name: string; value: string; version: string }>();
  const requests: FakeKeyVaultRequest[] = [];
  const failures: number[] = [];
  let authorizedSecretRequests = 0;
  let tokenRequests = 0;
  let versionCounter = 0;
  let origin = "";

  async function handleToken(request: Request, url: URL): Promise<Response> {
    tokenRequests++;
    const form = new URLSearchParams(await request.text());
    const client = options.client;
    if (
      url.pathname !== `/${tenantId}/oauth2/v2.0/token` ||
      form.get("grant_type") !== "client_credentials" ||
      (client !== undefined &&
        (form.get("client_id") !== client.id || form.get("client_secret") !== client.secret))
    ) {
      return json(401, { error: "invalid_client", error_description: "AADSTS7000215: bad client" });
    }
    return json(200, {
      token_type: "Bearer",
      expires_in: 3600,
      ext_expires_in: 3600,
      access_token: token,
    });
  }

  function openIdConfiguration(): Response {
    const base = `${origin}/${tenantId}`;
    return json(200, {
      token_endpoint: `${base}/oauth2/v2.0/token`,
      authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
      issuer: `${base}/v2.0`,
      end_session_endpoint: `${base}/oauth2/v2.0/logout`,
      jwks_uri: `${base}/discovery/v2.0/keys`,
      response_modes_supported: ["query", "fragment", "form_post"],
    });
  }

  async function handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname.endsWith("/v2.0/.well-known/openid-configuration")) {
      return openIdConfiguration();
    }
    if (url.pathname.endsWith("/oauth2/v2.0/token")) return await handleToken(request, url);

    const authorization = request.headers.get("authorization");
    const authorized = authorization === `Bearer ${token}`;
    requests.push({ method: request.method, path: url.pathname, authorized });
    if (!authorized) {
      return challenge(tenantId);
    }
    authorizedSecretRequests++;
    const failure = failures.shift();
    if (failure !== undefined) {
      return keyVaultError(failure, "InternalServerError", "The fake vault was told to fail.");
    }
    if (!url.searchParams.has("api-version")) {
      return keyVaultError(400, "BadParameter", "The api-version query parameter is required.");
    }
    const match = /^\/secrets\/([^/]+)(?:\/([^/]*))?\/?$/.exec(url.pathname);
    if (request.method !== "GET" || match === null) {
      return keyVaultError(404, "NotFound", "No such operation.");
    }
    const name = decodeURIComponent(match[1] ?? "");
    if (!KEY_VAULT_NAME.test(name)) {
      return keyVaultError(400, "BadParameter", "Invalid secret name.");
    }
    const secret = secrets.get(name.toLowerCase());
    const version = match[2] ?? "";
    if (secret === undefined || (version !== "" && version !== secret.version)) {
      return keyVaultError(
        404,
        "SecretNotFound",
        `A secret with (name/id) ${name}${
          version ? `/${version}` : ""
        } was not found in this key vault.`,
      );
    }
    const now = Math.floor(Date.now() / 1000);
    return json(200, {
      value: secret.value,
      id: `${origin}/secrets/${secret.name}/${secret.version}`,
      attributes: {
        enabled: true,
        created: now,
        updated: now,
        recoveryLevel: "Recoverable+Purgeable",
        recoverableDays: 90,
      },
      tags: {},
    });
  }

  const certificates = options.certificates;
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: certificates.cert,
    key: certificates.key,
    onListen: () => {},
  }, handle);
  origin = `https://127.0.0.1:${server.addr.port}`;
  const plain = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, handle);

  const close = async () => {
    await Promise.all([server.shutdown(), plain.shutdown()]);
  };
  return {
    url: origin,
    plainUrl: `http://127.0.0.1:${plain.addr.port}`,
    token,
    tenantId,
    requests,
    get authorizedSecretRequests() {
      return authorizedSecretRequests;
    },
    get tokenRequests() {
      return tokenRequests;
    },
    setSecret(name, value) {
      if (!KEY_VAULT_NAME.test(name)) throw new Error(`Key Vault would refuse the name ${name}`);
      secrets.set(name.toLowerCase(), { name, value, version: `v${++versionCounter}` });
    },
    clear() {
      secrets.clear();
    },
    failNext(status, count = 1) {
      for (let i = 0; i < count; i++) failures.push(status);
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

function challenge(tenantId: string): Response {
  return new Response(
    JSON.stringify({
      error: { code: "Unauthorized", message: "AKV10000: Request is missing a Bearer token." },
    }),
    {
      status: 401,
      headers: {
        "content-type": "application/json; charset=utf-8",
        "www-authenticate":
          `Bearer authorization="https://login.microsoftonline.com/${tenantId}", resource="https://vault.azure.net"`,
      },
    },
  );
}

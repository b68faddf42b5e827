/**
 * Secrets from Azure Key Vault (`SECRETS_PROVIDER=azure-keyvault`), read with `@azure/keyvault-secrets` and
 * authenticated with `@azure/identity`.
 *
 * **Names.** The services use secret names made of letters, digits, `_`, `-` and `.` (see
 * `isSafeSecretName`); Key Vault allows only `[0-9a-zA-Z-]`, 1 to 127 characters. {@link keyVaultSecretName}
 * maps every `_` and `.` to `-` and keeps everything else, so `spn_clientid` is read from the Key Vault secret
 * `spn-clientid` and `name.with-dots_1` from `name-with-dots-1`. The mapping is deterministic but not
 * one-to-one: `a_b`, `a.b` and `a-b` all read the same Key Vault secret. Key Vault names ignore case, but this
 * store does not: the name Key Vault reports back must match the mapped name exactly, or the secret counts as
 * not found (as a file named `Secret` is not the file `secret`).
 *
 * **Cache.** Values are kept for a TTL (default five minutes); concurrent reads of one name share a request.
 * "Not found" and failures are not cached.
 *
 * **Errors.** 404 `SecretNotFound` (and an empty value) is {@link SecretNotFoundError}; anything else (network,
 * TLS, authentication, 401/403, 429, 5xx) is {@link SecretStoreUnavailableError}. Messages name the secret,
 * never its value.
 *
 * @module
 */
import { SecretClient } from "@azure/keyvault-secrets";
import {
  ClientSecretCredential,
  ManagedIdentityCredential,
  type TokenCredential,
  WorkloadIdentityCredential,
} from "@azure/identity";
import { isSafeSecretName } from "../../domain/names.ts";
import {
  InvalidSecretNameError,
  SecretNotFoundError,
  type SecretStore,
  SecretStoreUnavailableError,
} from "../../ports/secret_store.ts";

/** How long a value is cached when nothing else is said: five minutes. */
export const DEFAULT_KEY_VAULT_CACHE_TTL_MS = 5 * 60 * 1000;

/** The part of `SecretClient` the store uses (so tests may pass a stand-in). */
export type SecretReader = Pick<SecretClient, "getSecret">;

/** Options for {@link KeyVaultSecretStore}. */
export interface KeyVaultSecretStoreOptions {
  /** How long a value is served from memory, in milliseconds; 0 disables the cache. */
  readonly cacheTtlMs?: number;
  /** The clock, in milliseconds (for tests). */
  readonly now?: () => number;
}

/**
 * Maps a service secret name to its Key Vault secret name: `_` and `.` become `-`.
 *
 * @throws {InvalidSecretNameError} when `name` is not a safe secret name.
 */
export function keyVaultSecretName(name: string): string {
  if (!isSafeSecretName(name)) throw new InvalidSecretNameError(name);
  return name.replace(/[_.]/g, "-");
}

interface CacheEntry {
  readonly value: string;
  readonly expiresAt: number;
}

/** Reads secrets from one Azure Key Vault, caching values for a TTL. */
export class KeyVaultSecretStore implements SecretStore {
  readonly #client: SecretReader;
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #cache = new Map<string, CacheEntry>();
  readonly #inFlight = new Map<string, Promise<string>>();

  /**
   * @param client a `SecretClient` for the vault (it does the authentication).
   * @param options cache TTL and clock.
   */
  constructor(client: SecretReader, options: KeyVaultSecretStoreOptions = {}) {
    const ttl = options.cacheTtlMs ?? DEFAULT_KEY_VAULT_CACHE_TTL_MS;
    if (!Number.isFinite(ttl) || ttl < 0) {
      throw new RangeError(`Cannot use cache TTL ${ttl}: must be a non-negative number`);
    }
    this.#client = client;
    this.#ttlMs = ttl;
    this.#now = options.now ?? Date.now;
  }

  /** Forgets every cached value. */
  clearCache(): void {
    this.#cache.clear();
  }

  get(name: string): Promise<string> {
    let vaultName: string;
    try {
      vaultName = keyVaultSecretName(name);
    } catch (error) {
      return Promise.reject(error);
    }
    const cached = this.#cache.get(name);
    if (cached !== undefined) {
      if (this.#now() < cached.expiresAt) return Promise.resolve(cached.value);
      this.#cache.delete(name);
    }
    const pending = this.#inFlight.get(name);
    if (pending !== undefined) return pending;
    const read = this.#fetch(name, vaultName).finally(() => this.#inFlight.delete(name));
    this.#inFlight.set(name, read);
    return read;
  }

  async #fetch(name: string, vaultName: string): Promise<string> {
    let secret: Awaited<ReturnType<SecretReader["getSecret"]>>;
    try {
      secret = await this.#client.getSecret(vaultName);
    } catch (error) {
      throw classify(name, error);
    }
    // Key Vault matches names ignoring case and reports the stored name; this store is case-sensitive.
    if (secret.name !== vaultName) throw new SecretNotFoundError(name);
    const value = secret.value?.trim();
    if (value === undefined || value === "") throw new SecretNotFoundError(name);
    if (this.#ttlMs > 0) this.#cache.set(name, { value, expiresAt: this.#now() + this.#ttlMs });
    return value;
  }
}

function classify(name: string, error: unknown): Error {
  const status = typeof error === "object" && error !== null && "statusCode" in error
    ? (error as { statusCode?: unknown }).statusCode
    : undefined;
  const code = typeof error === "object" && error !== null && "code" in error
    ? (error as { code?: unknown }).code
    : undefined;
  if (status === 404 && code === "SecretNotFound") {
    return new SecretNotFoundError(name, { cause: summary(error) });
  }
  const why = typeof status === "number"
    ? `HTTP ${status}${typeof code === "string" ? ` ${code}` : ""}`
    : (error instanceof Error ? `${error.name}: ${error.message}` : String(error));
  return new SecretStoreUnavailableError(
    `Cannot read secret "${name}" from Azure Key Vault (${why})`,
    { cause: summary(error) },
  );
}

/** A copy of the error without the request and response objects the SDK attaches. */
function summary(error: unknown): Error {
  if (!(error instanceof Error)) return new Error(String(error));
  const copy = new Error(error.message);
  copy.name = error.name;
  return copy;
}

/** A Key Vault setting that is missing or wrong. */
export class KeyVaultConfigurationError extends Error {
  override readonly name = "KeyVaultConfigurationError";
}

/** Which credential {@link keyVaultCredentialFromEnv} chose. */
export type KeyVaultCredentialKind = "client-secret" | "workload-identity" | "managed-identity";

/** Extra settings that do not come from the environment (tests, private clouds). */
export interface KeyVaultFromEnvOptions {
  /** PEM certificate authorities to trust, for the vault and the token endpoint (instead of the defaults). */
  readonly caCertificates?: string;
  /** Skip the SDK's check that the challenge's resource matches the vault's domain (needed for a fake vault). */
  readonly disableChallengeResourceVerification?: boolean;
  /** Overrides the credential (the fake vault's tests use a fixed token). */
  readonly credential?: TokenCredential;
}

/** The environment variables the factory reads. */
export type KeyVaultEnv = Readonly<Record<string, string | undefined>>;

function setting(env: KeyVaultEnv, key: string): string | undefined {
  const value = env[key]?.trim();
  return value === undefined || value === "" ? undefined : value;
}

/**
 * Picks the credential: a client secret when `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and `AZURE_CLIENT_SECRET`
 * are all set; else workload identity when `AZURE_FEDERATED_TOKEN_FILE` is set (with `AZURE_TENANT_ID` and
 * `AZURE_CLIENT_ID`); else managed identity (user-assigned when `AZURE_CLIENT_ID` is set). `AZURE_AUTHORITY_HOST`
 * is passed to the first two.
 *
 * @throws {KeyVaultConfigurationError} when workload identity lacks its tenant or client id.
 */
export function keyVaultCredentialFromEnv(
  env: KeyVaultEnv,
  options: Pick<KeyVaultFromEnvOptions, "caCertificates"> = {},
): { kind: KeyVaultCredentialKind; credential: TokenCredential } {
  const tenantId = setting(env, "AZURE_TENANT_ID");
  const clientId = setting(env, "AZURE_CLIENT_ID");
  const clientSecret = setting(env, "AZURE_CLIENT_SECRET");
  const tokenFile = setting(env, "AZURE_FEDERATED_TOKEN_FILE");
  const authorityHost = setting(env, "AZURE_AUTHORITY_HOST");
  const common = {
    ...(authorityHost === undefined ? {} : { authorityHost }),
    ...(options.caCertificates === undefined ? {} : { tlsOptions: { ca: options.caCertificates } }),
  };
  if (tenantId !== undefined && clientId !== undefined && clientSecret !== undefined) {
    return {
      kind: "client-secret",
      credential: new ClientSecretCredential(tenantId, clientId, clientSecret, {
        ...common,
        // A private authority host has no instance-discovery endpoint.
        ...(authorityHost === undefined ? {} : { disableInstanceDiscovery: true }),
      }),
    };
  }
  if (tokenFile !== undefined) {
    if (tenantId === undefined || clientId === undefined) {
      throw new KeyVaultConfigurationError(
        "Cannot use workload identity: AZURE_FEDERATED_TOKEN_FILE needs AZURE_TENANT_ID and AZURE_CLIENT_ID",
      );
    }
    return {
      kind: "workload-identity",
      credential: new WorkloadIdentityCredential({
        ...common,
        tenantId,
        clientId,
        tokenFilePath: tokenFile,
      }),
    };
  }
  return {
    kind: "managed-identity",
    credential: clientId === undefined
      ? new ManagedIdentityCredential()
      : new ManagedIdentityCredential({ clientId }),
  };
}

/**
 * Builds a {@link KeyVaultSecretStore} from `AZURE_KEYVAULT_URL` (an `https://` URL, required),
 * `AZURE_KEYVAULT_CACHE_TTL_SECONDS` (default 300) and the credential settings of
 * {@link keyVaultCredentialFromEnv}.
 *
 * @throws {KeyVaultConfigurationError} when a setting is missing or invalid.
 */
export function keyVaultSecretStoreFromEnv(
  env: KeyVaultEnv,
  options: KeyVaultFromEnvOptions = {},
): { store: KeyVaultSecretStore; credentialKind: KeyVaultCredentialKind | "given" } {
  const url = setting(env, "AZURE_KEYVAULT_URL");
  if (url === undefined) {
    throw new KeyVaultConfigurationError(
      "Cannot use Azure Key Vault: AZURE_KEYVAULT_URL is not set",
    );
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new KeyVaultConfigurationError(`Cannot use AZURE_KEYVAULT_URL ${JSON.stringify(url)}`);
  }
  if (parsed.protocol !== "https:") {
    throw new KeyVaultConfigurationError(
      `Cannot use AZURE_KEYVAULT_URL ${JSON.stringify(url)}: it must be an https:// URL`,
    );
  }
  const ttlSetting = setting(env, "AZURE_KEYVAULT_CACHE_TTL_SECONDS");
  const ttlSeconds = ttlSetting === undefined
    ? DEFAULT_KEY_VAULT_CACHE_TTL_MS / 1000
    : Number(ttlSetting);
  if (!Number.isFinite(ttlSeconds) || ttlSeconds < 0) {
    throw new KeyVaultConfigurationError(
      `Cannot use AZURE_KEYVAULT_CACHE_TTL_SECONDS ${
        JSON.stringify(ttlSetting)
      }: must be a number >= 0`,
    );
  }
  const chosen = options.credential === undefined
    ? keyVaultCredentialFromEnv(env, options)
    : { kind: "given" as const, credential: options.credential };
  const client = new SecretClient(parsed.href, chosen.credential, {
    ...(options.caCertificates === undefined ? {} : { tlsOptions: { ca: options.caCertificates } }),
    ...(options.disableChallengeResourceVerification === true
      ? { disableChallengeResourceVerification: true }
      : {}),
    retryOptions: { maxRetries: 2, retryDelayInMs: 200, maxRetryDelayInMs: 2000 },
  });
  return {
    store: new KeyVaultSecretStore(client, { cacheTtlMs: ttlSeconds * 1000 }),
    credentialKind: chosen.kind,
  };
}

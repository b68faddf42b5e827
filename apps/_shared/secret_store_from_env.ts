/**
 * The one place a service's secrets come from. `SECRETS_PROVIDER=file` (the default) reads the files in
 * `SECRETS_MNT_PATH`; `SECRETS_PROVIDER=azure-keyvault` reads the vault at `AZURE_KEYVAULT_URL`
 * (`adapters/azure/key_vault_secret_store.ts`). The same store serves the API keys read at startup and the
 * source credentials requests name, and gives `/ready` its check.
 *
 * A vault behind a private certificate authority (a TRE proxy) is trusted with Deno's `DENO_CERT` (or
 * `NODE_EXTRA_CA_CERTS`): both add a PEM file to the root store that the Azure SDK's `node:https` client
 * uses. Deno ignores a file it cannot read without a word, so this module refuses to start instead.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { z } from "zod";
import { FileSecretStore } from "../../adapters/filesystem/file_secret_store.ts";
import type { KeyVaultFromEnvOptions } from "../../adapters/azure/key_vault_secret_store.ts";
import {
  SecretNotFoundError,
  type SecretStore,
  SecretStoreUnavailableError,
} from "../../ports/secret_store.ts";
import { ConfigError } from "./app_errors.ts";
import { CommonEnv, MIN_API_KEY_LENGTH, parseEnv, type SecretsProvider } from "./config.ts";
import type { ReadinessCheck } from "./create_app.ts";
import type { Logger } from "./log.ts";
import { secretsDirectoryCheck } from "./readiness.ts";

/** The settings this module reads beyond `SECRETS_PROVIDER` and `SECRETS_MNT_PATH`. */
const KeyVaultEnv = z.object({
  /**
   * Skips the SDK's check that the vault's bearer challenge names a resource under the vault's own domain.
   * Needed only when the vault is reached under another name (a TRE proxy, a test vault).
   */
  AZURE_KEYVAULT_DISABLE_CHALLENGE_RESOURCE_VERIFICATION: z.enum(["true", "false"], {
    error: () => 'must be "true" or "false"',
  }).default("false").transform((v) => v === "true"),
});

/** The CA bundle variables Deno adds to its root store (and so to the Azure SDK's). */
const CA_BUNDLE_VARS = ["DENO_CERT", "NODE_EXTRA_CA_CERTS"] as const;

/** Options for {@link serviceSecretsFromEnv}. */
export interface ServiceSecretsOptions {
  /** Where the startup line and failed readiness checks are logged. */
  readonly log: Logger;
  /** Extra Key Vault settings that do not come from the environment (tests pass their CA here). */
  readonly keyVault?: KeyVaultFromEnvOptions;
}

/** What {@link ServiceSecrets} is made of. */
export interface ServiceSecretsParts {
  /** Where the secrets are. */
  readonly provider: SecretsProvider;
  /** The store requests read their credentials from. */
  readonly store: SecretStore;
  /** The environment, for the API keys' env vars. */
  readonly env: Record<string, string | undefined>;
  readonly log: Logger;
  /** The secrets directory, for the file provider's readiness check. */
  readonly directory?: string;
}

/** A service's secret store, with the reading rules for API keys and the `/ready` check. */
export class ServiceSecrets {
  /** Where the secrets are. */
  readonly provider: SecretsProvider;
  /** The store requests read their credentials from. */
  readonly store: SecretStore;
  readonly #env: Record<string, string | undefined>;
  readonly #log: Logger;
  readonly #directory: string | undefined;

  constructor(parts: ServiceSecretsParts) {
    this.provider = parts.provider;
    this.store = parts.store;
    this.#env = parts.env;
    this.#log = parts.log;
    this.#directory = parts.directory;
  }

  /** Where a secret of this name is looked up, for messages (never a value). */
  where(name: string): string {
    return this.provider === "file"
      ? `the file ${name} under SECRETS_MNT_PATH`
      // keyVaultSecretName's mapping, without loading the Azure SDK for it.
      : `the Key Vault secret ${name.replace(/[_.]/g, "-")}`;
  }

  /**
   * Reads an API key: the env var of that name (as written or upper case) wins over the store, as in the
   * reference. The value is trimmed.
   *
   * @throws {ConfigError} when the key is missing, empty, shorter than {@link MIN_API_KEY_LENGTH}, or the
   *   store cannot be read; the message names the key, never its value.
   */
  async readApiKey(name: string): Promise<string> {
    const hint = `put it in ${this.where(name)} or in the env var ${name.toUpperCase()}`;
    let value = this.#env[name] ?? this.#env[name.toUpperCase()];
    if (value === undefined) {
      try {
        value = await this.store.get(name);
      } catch (e) {
        if (e instanceof SecretNotFoundError) {
          throw new ConfigError(`Cannot start: API key "${name}" is not set or empty; ${hint}`);
        }
        throw new ConfigError(
          `Cannot start: cannot read API key "${name}": ${(e as Error).message}; ${hint}`,
        );
      }
    }
    value = value.trim();
    if (value.length < MIN_API_KEY_LENGTH) {
      throw new ConfigError(
        `Cannot start: API key "${name}" is ${
          value === "" ? "empty" : "too short"
        }; it must be at least ${MIN_API_KEY_LENGTH} characters`,
      );
    }
    return value;
  }

  /**
   * The `/ready` check of the store, named `secrets`. Files: the directory can be listed. Key Vault: the
   * secret `probe` (the service's own API key) can be read through the store and its cache; "not found"
   * also counts, since the vault answered and accepted the token (the key may come from an env var). The
   * value is dropped, and the detail names neither the vault nor the directory (`/ready` is public).
   */
  async readinessCheck(probe: string): Promise<ReadinessCheck> {
    if (this.#directory !== undefined) return await secretsDirectoryCheck(this.#directory);
    try {
      await this.store.get(probe);
    } catch (e) {
      if (!(e instanceof SecretNotFoundError)) {
        const message = e instanceof SecretStoreUnavailableError
          ? e.message
          : `${(e as Error).name}: ${(e as Error).message}`;
        this.#log.warn("secrets_unavailable", { provider: this.provider, message });
        return { name: "secrets", ok: false, detail: "Azure Key Vault cannot be read" };
      }
    }
    return { name: "secrets", ok: true };
  }
}

/**
 * Builds the service's secrets from `SECRETS_PROVIDER`, `SECRETS_MNT_PATH` and, for Key Vault,
 * `AZURE_KEYVAULT_URL`, the `AZURE_*` credential settings, `AZURE_KEYVAULT_CACHE_TTL_SECONDS` and
 * `AZURE_KEYVAULT_DISABLE_CHALLENGE_RESOURCE_VERIFICATION`. Nothing is read from the store yet.
 *
 * @throws {ConfigError} when a setting is missing or invalid.
 */
export async function serviceSecretsFromEnv(
  env: Record<string, string | undefined>,
  options: ServiceSecretsOptions,
): Promise<ServiceSecrets> {
  const config = parseEnv(CommonEnv.pick({ SECRETS_PROVIDER: true, SECRETS_MNT_PATH: true }), env);
  const log = options.log;
  if (config.SECRETS_PROVIDER === "file") {
    log.info("secrets_provider", { provider: "file" });
    return new ServiceSecrets({
      provider: "file",
      store: new FileSecretStore(config.SECRETS_MNT_PATH),
      env,
      log,
      directory: config.SECRETS_MNT_PATH,
    });
  }
  if ((env.AZURE_KEYVAULT_URL ?? "").trim() === "") {
    throw new ConfigError(
      'Cannot start: SECRETS_PROVIDER is "azure-keyvault" but AZURE_KEYVAULT_URL is not set',
    );
  }
  const extra = parseEnv(KeyVaultEnv, env);
  checkCaBundles(env);
  // Loaded only here, so services reading files never load the Azure SDK.
  const { KeyVaultConfigurationError, keyVaultSecretStoreFromEnv } = await import(
    "../../adapters/azure/key_vault_secret_store.ts"
  );
  try {
    const { store, credentialKind } = keyVaultSecretStoreFromEnv(env, {
      ...options.keyVault,
      ...(extra.AZURE_KEYVAULT_DISABLE_CHALLENGE_RESOURCE_VERIFICATION
        ? { disableChallengeResourceVerification: true }
        : {}),
    });
    log.info("secrets_provider", {
      provider: "azure-keyvault",
      vault: new URL(env.AZURE_KEYVAULT_URL!.trim()).host,
      credential: credentialKind,
      ca_bundles: CA_BUNDLE_VARS.filter((name) => (env[name] ?? "") !== ""),
    });
    if (extra.AZURE_KEYVAULT_DISABLE_CHALLENGE_RESOURCE_VERIFICATION) {
      log.warn("key_vault_challenge_resource_not_verified", {
        hint: "the token goes to AZURE_KEYVAULT_URL whatever resource its challenge names",
      });
    }
    return new ServiceSecrets({ provider: "azure-keyvault", store, env, log });
  } catch (e) {
    if (e instanceof KeyVaultConfigurationError) {
      throw new ConfigError(`Cannot start: ${e.message}`, { cause: e });
    }
    throw e;
  }
}

/**
 * Refuses a CA bundle variable (`DENO_CERT`, `NODE_EXTRA_CA_CERTS`) naming a file that is unreadable or
 * holds no certificate: Deno would ignore it without a word.
 *
 * @throws {ConfigError} naming the variable and the file.
 */
export function checkCaBundles(env: Record<string, string | undefined>): void {
  for (const name of CA_BUNDLE_VARS) {
    const path = env[name];
    if (path === undefined || path === "") continue;
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (e) {
      const why = (e as { code?: unknown }).code ?? (e as Error).name;
      throw new ConfigError(`Cannot start: ${name} ${path} cannot be read (${String(why)})`);
    }
    if (!text.includes("-----BEGIN CERTIFICATE-----")) {
      throw new ConfigError(`Cannot start: ${name} ${path} holds no PEM certificate`);
    }
  }
}

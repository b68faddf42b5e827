/**
 * Where the services read credentials from: mounted files, or Azure Key Vault (`SECRETS_PROVIDER`).
 *
 * @module
 */
import { AppError } from "../domain/errors.ts";

/** Reads named secrets. */
export interface SecretStore {
  /**
   * Returns the secret's value with surrounding whitespace removed.
   *
   * @param name the secret's name; must satisfy `isSafeSecretName`.
   * @returns the value, never empty.
   * @throws {InvalidSecretNameError} when the name could leave the store (checked before anything is read).
   * @throws {SecretNotFoundError} when no secret has that name, or it is empty.
   * @throws {SecretStoreUnavailableError} when the store cannot be read at all.
   */
  get(name: string): Promise<string>;
}

/** A secret name that could escape the store, refused before any lookup. */
export class InvalidSecretNameError extends AppError {
  readonly code = "invalid_secret_name";

  constructor(name: string) {
    super(`Cannot use secret name ${JSON.stringify(name)}: not a safe secret name`);
  }
}

/** No secret by that name (or it is empty). The message never names the directory. */
export class SecretNotFoundError extends AppError {
  readonly code = "secret_not_found";

  constructor(readonly secretName: string, options?: ErrorOptions) {
    super(`Cannot find secret "${secretName}"`, options);
  }
}

/** The store itself cannot be read. */
export class SecretStoreUnavailableError extends AppError {
  readonly code = "secret_store_unavailable";
}

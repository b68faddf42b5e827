/**
 * Secrets as files in one directory (`SECRETS_MNT_PATH`), as Kubernetes and the Secrets Store CSI driver
 * mount them. Each secret is the file of that name; its content is trimmed.
 *
 * @module
 */
import { readFile, realpath } from "node:fs/promises";
import { join, sep } from "node:path";
import { isSafeSecretName } from "../../domain/names.ts";
import {
  InvalidSecretNameError,
  SecretNotFoundError,
  type SecretStore,
  SecretStoreUnavailableError,
} from "../../ports/secret_store.ts";

/** Reads secrets from files directly inside one directory. */
export class FileSecretStore implements SecretStore {
  readonly #directory: string;

  /** @param directory the secrets directory; it is not read until the first {@link get}. */
  constructor(directory: string) {
    this.#directory = directory;
  }

  async get(name: string): Promise<string> {
    if (!isSafeSecretName(name)) throw new InvalidSecretNameError(name);
    const root = await this.#root();
    let file: string;
    try {
      file = await realpath(join(root, name));
    } catch (e) {
      if (isMissing(e)) throw new SecretNotFoundError(name, { cause: e });
      throw new SecretStoreUnavailableError(`Cannot read secret "${name}"`, { cause: e });
    }
    // Mounted secrets are often symlinks into a hidden folder of the same directory; nothing may leave it.
    if (!file.startsWith(root + sep)) throw new InvalidSecretNameError(name);
    let value: string;
    try {
      value = (await readFile(file, "utf8")).trim();
    } catch (e) {
      if (isMissing(e)) throw new SecretNotFoundError(name, { cause: e });
      throw new SecretStoreUnavailableError(`Cannot read secret "${name}"`, { cause: e });
    }
    if (value === "") throw new SecretNotFoundError(name);
    return value;
  }

  async #root(): Promise<string> {
    try {
      return await realpath(this.#directory);
    } catch (e) {
      throw new SecretStoreUnavailableError("Cannot open the secrets directory", { cause: e });
    }
  }
}

function isMissing(e: unknown): boolean {
  const code = (e as { code?: unknown }).code;
  return code === "ENOENT" || code === "ENOTDIR" || code === "EISDIR";
}

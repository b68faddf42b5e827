import assert from "node:assert/strict";
import { MemorySecretStore } from "../../adapters/memory/memory_secret_store.ts";
import {
  signedManifestText,
  stagingManifestKey,
  verifyManifestText,
} from "../../domain/staging_manifest.ts";
import { ConfigError } from "../_shared/app_errors.ts";
import { parseEnv } from "../_shared/config.ts";
import { memoryLogger } from "../_shared/log.ts";
import { manifestKeyFromSecrets, PublishEnv } from "./main.ts";

const API_KEY = "publish-key-0123456789";
const MANIFEST_SECRET = "manifest-secret-0123456789-0123456789";
const RUN = { project: "Pr042", startTime: "20250611_093000" };

/** True when a manifest signed with `signer` verifies with `checker`. */
async function sameKey(signer: CryptoKey, checker: CryptoKey): Promise<boolean> {
  const text = await signedManifestText({ version: 2, files: [] }, RUN, signer);
  return !("problem" in await verifyManifestText(text, RUN, checker));
}

Deno.test("manifestKeyFromSecrets() derives the key from the API key when stagingmanifestkey is absent", async () => {
  const log = memoryLogger("publish");
  const key = await manifestKeyFromSecrets(undefined, new MemorySecretStore({}), API_KEY, log);
  assert.ok(await sameKey(key, await stagingManifestKey(API_KEY)));
  assert.ok(log.lines.some((l) => l.includes("derived from publishserviceapikey")));
  assert.ok(!log.lines.join("\n").includes(API_KEY));
});

Deno.test("manifestKeyFromSecrets() uses the secret, by default or by the name configured", async () => {
  for (const name of [undefined, "custom.manifest-key"]) {
    const log = memoryLogger("publish");
    const secrets = new MemorySecretStore({ [name ?? "stagingmanifestkey"]: MANIFEST_SECRET });
    const key = await manifestKeyFromSecrets(name, secrets, API_KEY, log);
    assert.ok(await sameKey(key, await stagingManifestKey(MANIFEST_SECRET)));
    assert.ok(!(await sameKey(key, await stagingManifestKey(API_KEY))), "not the derived key");
    assert.ok(!log.lines.join("\n").includes(MANIFEST_SECRET), "the secret is never logged");
  }
});

Deno.test("manifestKeyFromSecrets() stops startup on a missing named secret or a short one", async () => {
  const log = memoryLogger("publish");
  await assert.rejects(
    manifestKeyFromSecrets("missing", new MemorySecretStore({}), API_KEY, log),
    (e) => e instanceof ConfigError && e.message.includes('"missing"'),
  );
  await assert.rejects(
    manifestKeyFromSecrets(
      undefined,
      new MemorySecretStore({ stagingmanifestkey: "short-but-not-32" }),
      API_KEY,
      log,
    ),
    (e) =>
      e instanceof ConfigError && /at least 32 characters/.test(e.message) &&
      !e.message.includes("short-but-not-32"),
  );
});

Deno.test("PublishEnv reads filestore modes as octal, owner-only by default", async (t) => {
  await t.step("defaults", () => {
    const config = parseEnv(PublishEnv, {});
    assert.equal(config.FILESTORE_FILE_MODE, 0o600);
    assert.equal(config.FILESTORE_DIR_MODE, 0o700);
  });
  await t.step("shared-mount modes", () => {
    const config = parseEnv(PublishEnv, { FILESTORE_FILE_MODE: "644", FILESTORE_DIR_MODE: "0750" });
    assert.equal(config.FILESTORE_FILE_MODE, 0o644);
    assert.equal(config.FILESTORE_DIR_MODE, 0o750);
  });
  const refused: [string, string, RegExp][] = [
    ["FILESTORE_FILE_MODE", "0666", /group or others write/],
    ["FILESTORE_FILE_MODE", "0602", /group or others write/],
    ["FILESTORE_FILE_MODE", "0400", /owner rw/],
    ["FILESTORE_FILE_MODE", "rw-r--r--", /octal mode/],
    ["FILESTORE_FILE_MODE", "4600", /octal mode/],
    ["FILESTORE_DIR_MODE", "0600", /owner rwx/],
    ["FILESTORE_DIR_MODE", "0777", /group or others write/],
    ["STAGING_MANIFEST_KEY_SECRET_NAME", "../outside", /secret name/],
  ];
  for (const [name, value, message] of refused) {
    await t.step(`${name}=${value} is refused`, () => {
      assert.throws(
        () => parseEnv(PublishEnv, { [name]: value }),
        (e) => e instanceof ConfigError && e.message.includes(name) && message.test(e.message),
      );
    });
  }
});

Deno.test("PublishEnv DISCLOSURE_CHECKS: requested by default, on or off, nothing else", () => {
  assert.equal(parseEnv(PublishEnv, {}).DISCLOSURE_CHECKS, "requested");
  for (const setting of ["requested", "on", "off"]) {
    assert.equal(parseEnv(PublishEnv, { DISCLOSURE_CHECKS: setting }).DISCLOSURE_CHECKS, setting);
  }
  assert.throws(
    () => parseEnv(PublishEnv, { DISCLOSURE_CHECKS: "true" }),
    (e) => e instanceof ConfigError && e.message.includes("DISCLOSURE_CHECKS"),
  );
});

Deno.test("PublishEnv REVOCATION_MODE: delete by default, or quarantine, nothing else", () => {
  assert.equal(parseEnv(PublishEnv, {}).REVOCATION_MODE, "delete");
  assert.equal(
    parseEnv(PublishEnv, { REVOCATION_MODE: "quarantine" }).REVOCATION_MODE,
    "quarantine",
  );
  assert.throws(
    () => parseEnv(PublishEnv, { REVOCATION_MODE: "move" }),
    (e) => e instanceof ConfigError && e.message.includes("REVOCATION_MODE"),
  );
});

Deno.test("PublishEnv DATA_API_AUDIT_FLUSH_SECONDS: 5 by default, more than 0 and at most 3600", () => {
  assert.equal(parseEnv(PublishEnv, {}).DATA_API_AUDIT_FLUSH_SECONDS, 5);
  assert.equal(
    parseEnv(PublishEnv, { DATA_API_AUDIT_FLUSH_SECONDS: "0.5" }).DATA_API_AUDIT_FLUSH_SECONDS,
    0.5,
  );
  for (const bad of ["0", "-1", "3601", "soon"]) {
    assert.throws(
      () => parseEnv(PublishEnv, { DATA_API_AUDIT_FLUSH_SECONDS: bad }),
      (e) => e instanceof ConfigError && e.message.includes("DATA_API_AUDIT_FLUSH_SECONDS"),
      bad,
    );
  }
});

Deno.test("PublishEnv DUCKDB_MEMORY_LIMIT: 64MB by default, a whole number and a unit", () => {
  assert.equal(parseEnv(PublishEnv, {}).DUCKDB_MEMORY_LIMIT, "64MB");
  assert.equal(parseEnv(PublishEnv, { DUCKDB_MEMORY_LIMIT: "2GiB" }).DUCKDB_MEMORY_LIMIT, "2GiB");
  for (const bad of ["0MB", "64", "64 MB", "1.5GB", "64MB; SET threads=1", "-1GB"]) {
    assert.throws(
      () => parseEnv(PublishEnv, { DUCKDB_MEMORY_LIMIT: bad }),
      (e) => e instanceof ConfigError && e.message.includes("DUCKDB_MEMORY_LIMIT"),
      bad,
    );
  }
});

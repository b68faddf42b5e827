import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "./app_errors.ts";
import { portFrom, readApiKey } from "./config.ts";

Deno.test("readApiKey()", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "cr8tor-keys-"));
  try {
    await writeFile(join(dir, "publishserviceapikey"), "  file-key-0123456789abcdef\n");
    await writeFile(join(dir, "shortkey"), "short");
    await writeFile(join(dir, "emptykey"), "\n");

    await t.step("reads the file in the secrets directory, trimmed", () => {
      assert.equal(readApiKey("publishserviceapikey", {}, dir), "file-key-0123456789abcdef");
    });
    await t.step("prefers the env var, as written or upper case", () => {
      assert.equal(
        readApiKey("publishserviceapikey", { publishserviceapikey: "env-key-0123456789" }, dir),
        "env-key-0123456789",
      );
      assert.equal(
        readApiKey("publishserviceapikey", { PUBLISHSERVICEAPIKEY: "ENV-KEY-0123456789" }, dir),
        "ENV-KEY-0123456789",
      );
    });
    const refusals: [string, Record<string, string>, RegExp][] = [
      ["a missing key", {}, /"metadataserviceapikey" is not set/],
      ["an empty key", { emptykey: "" }, /is empty/],
      ["a blank key file", {}, /is empty/],
      ["a key shorter than 16 characters", {}, /too short; it must be at least 16 characters/],
    ];
    const names = ["metadataserviceapikey", "emptykey", "emptykey", "shortkey"];
    for (const [i, [what, env, message]] of refusals.entries()) {
      await t.step(`refuses ${what}`, () => {
        const name = names[i]!;
        const envFor = what === "an empty key" ? { [name]: "" } : env;
        assert.throws(
          () => readApiKey(name, envFor, dir),
          (e: unknown) => e instanceof ConfigError && message.test(e.message),
        );
      });
    }
    await t.step("never puts the key's value in the message", () => {
      try {
        readApiKey("shortkey", {}, dir);
        assert.fail("expected a ConfigError");
      } catch (e) {
        assert.ok(
          !(e as Error).message.includes("short\n") && !(e as Error).message.includes(": short"),
        );
      }
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

Deno.test("portFrom()", async (t) => {
  await t.step("uses the default without PORT", () => assert.equal(portFrom({}, 8002), 8002));
  await t.step("reads PORT", () => assert.equal(portFrom({ PORT: "9001" }, 8002), 9001));
  await t.step("refuses a PORT that is not a port", () => {
    assert.throws(() => portFrom({ PORT: "http" }, 8002), ConfigError);
    assert.throws(() => portFrom({ PORT: "70000" }, 8002), ConfigError);
  });
});

import assert from "node:assert/strict";
import { ConfigError } from "./app_errors.ts";
import { CommonEnv, parseEnv, portFrom } from "./config.ts";

Deno.test("CommonEnv SECRETS_PROVIDER", async (t) => {
  await t.step("defaults to file", () => {
    assert.equal(parseEnv(CommonEnv, {}).SECRETS_PROVIDER, "file");
  });
  for (const provider of ["file", "azure-keyvault"] as const) {
    await t.step(`accepts ${provider}`, () => {
      assert.equal(parseEnv(CommonEnv, { SECRETS_PROVIDER: provider }).SECRETS_PROVIDER, provider);
    });
  }
  for (const wrong of ["vault", "azure_keyvault", "File", ""]) {
    await t.step(`refuses ${JSON.stringify(wrong)}, naming the allowed values`, () => {
      assert.throws(
        () => parseEnv(CommonEnv, { SECRETS_PROVIDER: wrong }),
        (e: unknown) =>
          e instanceof ConfigError &&
          e.message ===
            'Cannot start: invalid configuration: SECRETS_PROVIDER: must be one of "file", "azure-keyvault"',
      );
    });
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

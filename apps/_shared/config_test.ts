import assert from "node:assert/strict";
import { ConfigError } from "./app_errors.ts";
import { bodyReadingFrom, CommonEnv, parseEnv, portFrom } from "./config.ts";

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

Deno.test("CommonEnv HTTP limits and BIND_ADDRESS", async (t) => {
  await t.step("defaults: loopback, 10 s headers, 30 s body, 10 s idle, 16 bodies, 60 s", () => {
    const config = parseEnv(CommonEnv, {});
    assert.deepEqual(
      [
        config.BIND_ADDRESS,
        config.HEADERS_TIMEOUT_SECONDS,
        config.BODY_TIMEOUT_SECONDS,
        config.BODY_IDLE_TIMEOUT_SECONDS,
        config.MAX_CONCURRENT_BODIES,
        config.AUDIT_REFUSAL_INTERVAL_SECONDS,
      ],
      ["127.0.0.1", 10, 30, 10, 16, 60],
    );
    assert.deepEqual(bodyReadingFrom(config), {
      timeoutMs: 30_000,
      idleTimeoutMs: 10_000,
      maxConcurrent: 16,
    });
  });
  for (const address of ["0.0.0.0", "::", "10.1.2.3", "publisher.internal"]) {
    await t.step(`accepts BIND_ADDRESS ${address}`, () => {
      assert.equal(parseEnv(CommonEnv, { BIND_ADDRESS: address }).BIND_ADDRESS, address);
    });
  }
  const wrong: [string, string][] = [
    ["BIND_ADDRESS", "0.0.0.0 --evil"],
    ["BIND_ADDRESS", ""],
    ["HEADERS_TIMEOUT_SECONDS", "0"],
    ["HEADERS_TIMEOUT_SECONDS", "ten"],
    ["BODY_TIMEOUT_SECONDS", "-1"],
    ["BODY_IDLE_TIMEOUT_SECONDS", "0"],
    ["MAX_CONCURRENT_BODIES", "0"],
    ["MAX_CONCURRENT_BODIES", "1.5"],
    ["AUDIT_REFUSAL_INTERVAL_SECONDS", "0"],
  ];
  for (const [name, value] of wrong) {
    await t.step(`refuses ${name}=${JSON.stringify(value)}, naming it`, () => {
      assert.throws(
        () => parseEnv(CommonEnv, { [name]: value }),
        (e: unknown) => e instanceof ConfigError && e.message.includes(`${name}: `),
      );
    });
  }
});

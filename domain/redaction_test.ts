import assert from "node:assert/strict";
import { AppError } from "./errors.ts";
import { REDACTED, redactError, redactSecrets } from "./redaction.ts";

Deno.test("redactSecrets() removes each secret value in every form it may take", async (t) => {
  const password = `pa'ss "w/rd" ${crypto.randomUUID()}`;
  const cases: [string, string, string][] = [
    ["as is", `role "${password}" does not exist`, `role "${REDACTED}" does not exist`],
    ["twice", `${password}:${password}`, `${REDACTED}:${REDACTED}`],
    [
      "URL-encoded",
      `postgres://reader:${encodeURIComponent(password)}@db/x`,
      `postgres://reader:${REDACTED}@db/x`,
    ],
    ["JSON-escaped", JSON.stringify({ password }), `{"password":"${REDACTED}"}`],
    ["SQL literal", `'${password.replaceAll("'", "''")}'`, `'${REDACTED}'`],
    ["SQL identifier", `"${password.replaceAll('"', '""')}"`, `"${REDACTED}"`],
    ["absent", "Access denied for user", "Access denied for user"],
  ];
  for (const [name, text, expected] of cases) {
    await t.step(name, () => assert.equal(redactSecrets(text, [password]), expected));
  }
  await t.step("several secrets, the longer one first", () => {
    assert.equal(
      redactSecrets("user reader, password reader-secret", ["reader", "reader-secret"]),
      `user ${REDACTED}, password ${REDACTED}`,
    );
  });
  await t.step("empty values are ignored", () => {
    assert.equal(redactSecrets("nothing to hide", ["", ""]), "nothing to hide");
  });
});

class FakeDriverError extends AppError {
  readonly code = "fake";
}

Deno.test("redactError() cleans the message, stack, logDetail and causes, and keeps the class", () => {
  const secret = `s3cret-${crypto.randomUUID()}`;
  const driver = new Error(`password authentication failed (password "${secret}")`);
  const error = new FakeDriverError(`Cannot query: role "${secret}" does not exist`, {
    cause: driver,
    logDetail: `driver said: ${driver.message}`,
  });
  const same = redactError(error, ["reader", secret]);
  assert.equal(same, error);
  assert.ok(same instanceof FakeDriverError);
  assert.equal(same.code, "fake");
  assert.equal(same.message, `Cannot query: role "${REDACTED}" does not exist`);
  assert.equal(same.logDetail, `driver said: password authentication failed (password "***")`);
  for (const text of [same.message, same.logDetail, same.stack, driver.message, driver.stack]) {
    assert.ok(!String(text).includes(secret), String(text));
  }
  assert.equal(redactError(`plain ${secret}`, [secret]), `plain ${REDACTED}`);
  assert.equal(redactError(42, [secret]), 42);
  // A cause chain that loops ends.
  const a = new Error(secret);
  const b = new Error(secret, { cause: a });
  Object.defineProperty(a, "cause", { value: b });
  redactError(a, [secret]);
  assert.equal(a.message, REDACTED);
  assert.equal(b.message, REDACTED);
});

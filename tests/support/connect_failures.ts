/**
 * The check every connect-failure test of a source adapter makes: the fixed sentence and code of the
 * error's class, the driver's message only in `logDetail`, and no secret anywhere in the error.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  SourceConnectionError,
  type SourceDatabase,
  SourceLoginRefusedError,
} from "../../ports/source_database.ts";

/**
 * Asserts that `error` is a connect failure of class `expected` with its fixed message, whose
 * `logDetail` matches `logDetail`, and whose message, `logDetail` and stack hold none of `secrets`.
 */
export function assertConnectFailure(
  error: unknown,
  expected: typeof SourceConnectionError | typeof SourceLoginRefusedError,
  logDetail: RegExp,
  secrets: readonly string[] = [],
): void {
  assert.ok(error instanceof expected, `${String(error)} (${(error as Error)?.name})`);
  const [message, code] = expected === SourceLoginRefusedError
    ? ["The source database refused the login", "source_login_refused"]
    : ["Cannot connect to the source database", "source_connection_failed"];
  assert.equal(error.message, message);
  assert.equal(error.code, code);
  assert.match(String(error.logDetail), logDetail);
  for (const secret of secrets) {
    assert.ok(!error.message.includes(secret), error.message);
    assert.ok(!String(error.logDetail).includes(secret), String(error.logDetail));
    assert.ok(!String(error.stack).includes(secret), String(error.stack));
  }
}

/**
 * Awaits a connection that must fail with {@link SourceConnectionError} (closing it if it was accepted),
 * checks it with {@link assertConnectFailure}, and returns its `logDetail`.
 */
export async function assertConnectionRefused(
  connecting: Promise<SourceDatabase>,
  logDetail: RegExp,
): Promise<string> {
  const error = await connecting.then(
    async (db) => {
      await db.close();
      return assert.fail("the connection was accepted");
    },
    (e: unknown) => e,
  );
  assertConnectFailure(error, SourceConnectionError, logDetail);
  return String((error as SourceConnectionError).logDetail);
}

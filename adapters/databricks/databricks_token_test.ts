import assert from "node:assert/strict";
import {
  SourceConnectionError,
  SourceLoginRefusedError,
  SourceUnavailableError,
} from "../../ports/source_database.ts";
import { type FakeDatabricks, startFakeDatabricks } from "../../tests/support/fake_databricks.ts";
import type { FakeWorkspace } from "../../tests/support/fake_databricks_workspace.ts";
import { type DatabricksTokenOptions, DatabricksTokenSource } from "./databricks_token.ts";

const CLIENT_ID = "0b5c1c4e-4a7e-4b8e-9c1e-client";
const CLIENT_SECRET = "dose-S3cr3t-value-that-must-never-leak";

function aWorkspace(overrides: Partial<FakeWorkspace> = {}): FakeWorkspace {
  return {
    catalog: "main",
    schemas: [],
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    ...overrides,
  };
}

function tokenSource(
  fake: FakeDatabricks,
  options: Partial<DatabricksTokenOptions> = {},
): DatabricksTokenSource {
  return new DatabricksTokenSource({
    baseUrl: fake.url,
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    timeoutMs: 5_000,
    caCertificates: [fake.caCertificate],
    ...options,
  });
}

/** A clock the test moves by hand. */
function manualClock(start = 1_000_000): { now: () => number; set(t: number): void } {
  let t = start;
  return {
    now: () => t,
    set(value: number) {
      t = value;
    },
  };
}

function assertNoSecrets(error: unknown, ...secrets: string[]): void {
  assert.ok(error instanceof SourceUnavailableError);
  const basic = btoa(`${CLIENT_ID}:${CLIENT_SECRET}`);
  for (const secret of [CLIENT_ID, CLIENT_SECRET, basic, ...secrets]) {
    assert.ok(!error.message.includes(secret), `message leaks a secret: ${error.message}`);
    assert.ok(!String(error.stack).includes(secret), "stack leaks a secret");
    assert.ok(!String(error.logDetail).includes(secret), `logDetail leaks: ${error.logDetail}`);
  }
}

/** A failure with the fixed sentence of its class, and `logDetail` for the log. */
function assertConnectionError(error: unknown): asserts error is SourceConnectionError {
  assert.ok(error instanceof SourceConnectionError, String(error));
  assert.equal(error.message, "Cannot connect to the source database");
  assert.equal(error.code, "source_connection_failed");
}

Deno.test("DatabricksTokenSource.token() gets a client-credentials token over TLS and caches it", async () => {
  await using fake = await startFakeDatabricks(aWorkspace());
  using tokens = tokenSource(fake);

  const first = await tokens.token();
  const second = await tokens.token();

  assert.match(first, /^dapi-fake-/);
  assert.equal(second, first);
  assert.equal(fake.tokensIssued, 1);
  assert.deepEqual(fake.requests, [{ method: "POST", path: "/oidc/v1/token", query: {} }]);
});

Deno.test("DatabricksTokenSource.token() refreshes the token one margin before it expires", async () => {
  await using fake = await startFakeDatabricks(aWorkspace({ tokenLifetimeSeconds: 3600 }));
  const clock = manualClock(0);
  using tokens = tokenSource(fake, { now: clock.now, refreshMarginMs: 60_000 });

  const first = await tokens.token();
  clock.set(3_600_000 - 60_000 - 1);
  assert.equal(await tokens.token(), first);
  assert.equal(fake.tokensIssued, 1);

  clock.set(3_600_000 - 60_000);
  const second = await tokens.token();
  assert.notEqual(second, first);
  assert.equal(fake.tokensIssued, 2);
  // The new token's lifetime counts from when it was asked for.
  clock.set(3_600_000 - 60_000 + 3_600_000 - 60_000 - 1);
  assert.equal(await tokens.token(), second);
  assert.equal(fake.tokensIssued, 2);
});

Deno.test("DatabricksTokenSource.token() uses the default one-minute margin", async () => {
  await using fake = await startFakeDatabricks(aWorkspace({ tokenLifetimeSeconds: 600 }));
  const clock = manualClock(0);
  using tokens = tokenSource(fake, { now: clock.now });

  const first = await tokens.token();
  clock.set(540_000 - 1);
  assert.equal(await tokens.token(), first);
  clock.set(540_000);
  assert.notEqual(await tokens.token(), first);
  assert.equal(fake.tokensIssued, 2);
});

Deno.test("DatabricksTokenSource.token() keeps a short-lived token for half its life", async () => {
  await using fake = await startFakeDatabricks(aWorkspace({ tokenLifetimeSeconds: 60 }));
  const clock = manualClock(0);
  using tokens = tokenSource(fake, { now: clock.now, refreshMarginMs: 60_000 });

  const first = await tokens.token();
  assert.equal(await tokens.token(), first);
  clock.set(29_999);
  assert.equal(await tokens.token(), first);
  clock.set(30_000);
  assert.notEqual(await tokens.token(), first);
  assert.equal(fake.tokensIssued, 2);
});

Deno.test("DatabricksTokenSource.token() shares one request between concurrent callers", async () => {
  await using fake = await startFakeDatabricks(aWorkspace());
  using tokens = tokenSource(fake);

  const all = await Promise.all(Array.from({ length: 8 }, () => tokens.token()));

  assert.equal(new Set(all).size, 1);
  assert.equal(fake.tokensIssued, 1);
  assert.equal(fake.requests.length, 1);
});

Deno.test("DatabricksTokenSource.invalidate() drops the token only while it is the cached one", async () => {
  await using fake = await startFakeDatabricks(aWorkspace());
  using tokens = tokenSource(fake);

  const first = await tokens.token();
  tokens.invalidate("some-other-token");
  assert.equal(await tokens.token(), first);
  assert.equal(fake.tokensIssued, 1);

  tokens.invalidate(first);
  const second = await tokens.token();
  assert.notEqual(second, first);
  assert.equal(fake.tokensIssued, 2);

  // A late invalidation of the old token must not throw away the new one.
  tokens.invalidate(first);
  assert.equal(await tokens.token(), second);
  assert.equal(fake.tokensIssued, 2);
});

Deno.test("DatabricksTokenSource.token() reports a wrong secret without revealing it", async () => {
  await using fake = await startFakeDatabricks(aWorkspace());
  const wrong = "wrong-secret-that-must-not-leak-either";
  using tokens = tokenSource(fake, { clientSecret: wrong });

  const error = await tokens.token().then(() => undefined, (e: unknown) => e);

  assert.ok(error instanceof SourceLoginRefusedError);
  assert.equal(error.message, "The source database refused the login");
  assert.equal(error.code, "source_login_refused");
  assert.equal(
    error.logDetail,
    `Cannot get a Databricks OAuth token from ${fake.url}: ` +
      "HTTP 401 invalid_client (Client authentication failed)",
  );
  assertNoSecrets(error, wrong, btoa(`${CLIENT_ID}:${wrong}`));
  assert.equal(fake.tokensIssued, 0);
});

Deno.test("DatabricksTokenSource.token() does not cache a failure", async () => {
  await using fake = await startFakeDatabricks(aWorkspace());
  using tokens = tokenSource(fake);
  fake.failNext("/oidc/v1/token", 503, {
    error_code: "TEMPORARILY_UNAVAILABLE",
    message: "Try again later.",
  });

  await assert.rejects(tokens.token(), (e: unknown) => {
    assertConnectionError(e);
    assert.match(String(e.logDetail), /: HTTP 503$/);
    return true;
  });
  assert.match(await tokens.token(), /^dapi-fake-/);
  assert.equal(fake.tokensIssued, 1);
});

Deno.test("DatabricksTokenSource.token() rejects a reply without access_token", async () => {
  await using fake = await startFakeDatabricks(aWorkspace());
  using tokens = tokenSource(fake);
  fake.failNext("/oidc/v1/token", 200, { error_code: "NONE", message: "no token here" });

  await assert.rejects(tokens.token(), (e: unknown) => {
    assertConnectionError(e);
    assert.equal(
      e.logDetail,
      `Cannot get a Databricks OAuth token from ${fake.url}: the reply has no access_token`,
    );
    return true;
  });
});

Deno.test("DatabricksTokenSource.token() refuses a server whose certificate is not trusted", async () => {
  await using fake = await startFakeDatabricks(aWorkspace());
  using tokens = tokenSource(fake, { caCertificates: [] });

  await assert.rejects(tokens.token(), (e: unknown) => {
    assertConnectionError(e);
    assert.ok(
      String(e.logDetail).startsWith(`Cannot get a Databricks OAuth token from ${fake.url}: `),
    );
    assert.match(String(e.logDetail), /certificate|UnknownIssuer/i);
    assertNoSecrets(e);
    return true;
  });
  assert.equal(fake.tokensIssued, 0);
});

Deno.test("DatabricksTokenSource.token() times out on a server that never answers", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    try {
      for await (const conn of listener) held.push(conn);
    } catch {
      // closed
    }
  })();
  try {
    using tokens = new DatabricksTokenSource({
      baseUrl: `https://127.0.0.1:${listener.addr.port}`,
      clientId: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
      timeoutMs: 150,
    });
    const started = Date.now();
    await assert.rejects(tokens.token(), (e: unknown) => {
      assertConnectionError(e);
      assert.match(String(e.logDetail), /: no complete reply within 150 ms$/);
      assertNoSecrets(e);
      return true;
    });
    assert.ok(Date.now() - started < 3_000);
  } finally {
    listener.close();
    await accepting;
    for (const conn of held) conn.close();
  }
});

Deno.test("DatabricksTokenSource.token() reports a refused connection", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  using tokens = new DatabricksTokenSource({
    baseUrl: `https://127.0.0.1:${port}`,
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    timeoutMs: 5_000,
  });

  await assert.rejects(tokens.token(), (e: unknown) => {
    assertConnectionError(e);
    assert.ok(
      String(e.logDetail).startsWith(`Cannot get a Databricks OAuth token from https://127.0.0.1:`),
    );
    assertNoSecrets(e);
    return true;
  });
});

Deno.test("DatabricksTokenSource refuses a workspace URL that is not https", async (t) => {
  for (
    const baseUrl of [
      "http://127.0.0.1:8443",
      "ws://example.cloud.databricks.com",
      "adb-123.azuredatabricks.net",
      "https://user:pass@adb-123.azuredatabricks.net",
      "https://adb-123.azuredatabricks.net/?o=123",
    ]
  ) {
    await t.step(baseUrl, () => {
      assert.throws(
        () =>
          new DatabricksTokenSource({
            baseUrl,
            clientId: CLIENT_ID,
            clientSecret: CLIENT_SECRET,
            timeoutMs: 1_000,
          }),
        (e: unknown) => {
          assert.ok(e instanceof TypeError);
          assert.ok(e.message.startsWith("Cannot use Databricks workspace URL"));
          assert.ok(!e.message.includes("pass@"));
          return true;
        },
      );
    });
  }
});

Deno.test("DatabricksTokenSource refuses bad options", () => {
  const base = {
    baseUrl: "https://adb-123.azuredatabricks.net/",
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    timeoutMs: 1_000,
  };
  assert.throws(() => new DatabricksTokenSource({ ...base, clientId: "" }), TypeError);
  assert.throws(() => new DatabricksTokenSource({ ...base, clientSecret: "" }), TypeError);
  assert.throws(() => new DatabricksTokenSource({ ...base, timeoutMs: 0 }), RangeError);
  assert.throws(() => new DatabricksTokenSource({ ...base, timeoutMs: NaN }), RangeError);
  assert.throws(() => new DatabricksTokenSource({ ...base, refreshMarginMs: -1 }), RangeError);
  new DatabricksTokenSource(base).close();
});

Deno.test("DatabricksTokenSource.close() stops it handing out tokens", async () => {
  await using fake = await startFakeDatabricks(aWorkspace());
  const tokens = tokenSource(fake);
  await tokens.token();
  tokens.close();
  tokens.close();

  await assert.rejects(tokens.token(), SourceUnavailableError);
  assert.equal(fake.tokensIssued, 1);
});

import assert from "node:assert/strict";
import {
  type AllowedSource,
  AllowedSources,
  normalizeHost,
  SourceNotAllowedError,
} from "./allowed_sources.ts";
import { z } from "zod";
import { Source } from "./contract.ts";

Deno.test("normalizeHost() gives every spelling of an address one form", async (t) => {
  const cases: [string, string | undefined][] = [
    ["db.internal", "db.internal"],
    ["DB.Internal.", "db.internal"],
    ["127.0.0.1", "127.0.0.1"],
    ["127.1", "127.0.0.1"],
    ["0x7f.1", "127.0.0.1"],
    ["0x7f000001", "127.0.0.1"],
    ["2130706433", "127.0.0.1"],
    ["017700000001", "127.0.0.1"],
    ["0177.0.0.01", "127.0.0.1"],
    ["[::ffff:127.0.0.1]", "127.0.0.1"],
    ["[0:0:0:0:0:ffff:7f00:1]", "127.0.0.1"],
    ["::ffff:169.254.169.254", "169.254.169.254"],
    ["[::1]", "[::1]"],
    ["[0:0:0:0:0:0:0:1]", "[::1]"],
    ["::1", "[::1]"],
    ["localhost", "localhost"],
    ["LOCALHOST.", "localhost"],
    ["", undefined],
    ["a b", undefined],
    ["user@host", undefined],
    ["host:5432", undefined],
    ["host/path", undefined],
    ["999.1.1.1", undefined],
  ];
  for (const [input, expected] of cases) {
    await t.step(JSON.stringify(input), () => assert.equal(normalizeHost(input), expected));
  }
});

const ENTRIES: AllowedSource[] = [
  {
    type: "postgresql",
    host: "127.0.0.1",
    port: 5432,
    database: "research",
    credentials: [{ username: "pg-user", password: "pg-password" }],
  },
  {
    type: "postgresql",
    host: "127.0.0.1",
    port: 5432,
    database: "research",
    credentials: [
      { username: "pg-user-2", password: "pg-password-2" },
      { username: "pg-user-3", password: "pg-password-3" },
    ],
  },
  {
    type: "sqlserver",
    host: "DW.internal",
    port: 1433,
    database: "dw",
    credentials: [{ username: "u", password: "p" }],
  },
  {
    type: "databrickssql",
    host: "adb-1.azuredatabricks.net",
    port: 443,
    http_path: "/sql/1.0/warehouses/abc",
    catalog: "gold",
    credentials: [{ client_id: "spn-id", client_secret: "spn-secret" }],
  },
];

function sql(overrides: Record<string, unknown> = {}, credentials = ["pg-user", "pg-password"]) {
  return Source.parse({
    type: "postgresql",
    host_url: "127.0.0.1",
    port: 5432,
    database: "research",
    credentials: { username_key: credentials[0], password_key: credentials[1] },
    ...overrides,
  });
}

function databricks(overrides: Record<string, unknown> = {}) {
  return Source.parse({
    type: "databrickssql",
    host_url: "https://adb-1.azuredatabricks.net",
    http_path: "/sql/1.0/warehouses/abc",
    catalog: "gold",
    credentials: { spn_clientid: "spn-id", spn_secret: "spn-secret" },
    ...overrides,
  });
}

Deno.test("AllowedSources.authorize() accepts a listed source and answers the entry's address", () => {
  const allowed = new AllowedSources(ENTRIES);
  assert.deepEqual(allowed.authorize(sql()), { host: "127.0.0.1", port: 5432 });
  // Another spelling of the same host is the same source, and connects to the entry's spelling.
  assert.deepEqual(allowed.authorize(sql({ host_url: "0x7f.1" })), {
    host: "127.0.0.1",
    port: 5432,
  });
  assert.deepEqual(allowed.authorize(sql({ host_url: "[::ffff:127.0.0.1]" })), {
    host: "127.0.0.1",
    port: 5432,
  });
  // A second entry for the same database with other credentials, one of two logins each.
  for (const login of [["pg-user-2", "pg-password-2"], ["pg-user-3", "pg-password-3"]]) {
    assert.deepEqual(allowed.authorize(sql({}, login)), { host: "127.0.0.1", port: 5432 });
  }
  // `mssql` and `sqlserver` are one engine; host case does not matter.
  assert.deepEqual(
    allowed.authorize(sql({
      type: "mssql",
      host_url: "dw.INTERNAL",
      port: 1433,
      database: "dw",
      credentials: { username_key: "u", password_key: "p" },
    })),
    { host: "DW.internal", port: 1433 },
  );
  assert.deepEqual(allowed.authorize(databricks()), {
    host: "adb-1.azuredatabricks.net",
    port: 443,
  });
  // A Databricks request's username_key and password_key are never read, so they bind nothing.
  assert.ok(allowed.authorize(databricks({
    credentials: {
      spn_clientid: "spn-id",
      spn_secret: "spn-secret",
      username_key: "pg-user",
      password_key: "pg-password",
    },
  })));
});

Deno.test("AllowedSources.authorize() refuses anything not listed", async (t) => {
  const allowed = new AllowedSources(ENTRIES);
  const refused: [string, Source, RegExp][] = [
    ["another host", sql({ host_url: "169.254.169.254" }), /not in this deployment/],
    ["localhost for 127.0.0.1", sql({ host_url: "localhost" }), /not in this deployment/],
    ["another port", sql({ port: 5433 }), /not in this deployment/],
    ["another database", sql({ database: "postgres" }), /not in this deployment/],
    ["database case", sql({ database: "Research" }), /not in this deployment/],
    ["another engine", sql({ type: "mysql" }), /not in this deployment/],
    ["an unlisted secret", sql({}, ["pg-user", "publishserviceapikey"]), /"publishserviceapikey"/],
    ["the password secret as the user name", sql({}, ["pg-password", "pg-user"]), /these roles/],
    ["the password secret in both roles", sql({}, ["pg-password", "pg-password"]), /these roles/],
    ["the user secret in both roles", sql({}, ["pg-user", "pg-user"]), /these roles/],
    ["secrets from two entries mixed", sql({}, ["pg-user", "pg-password-2"]), /these roles/],
    ["secrets from two logins of one entry", sql({}, ["pg-user-2", "pg-password-3"]), /roles/],
    ["another source's login", sql({}, ["u", "p"]), /as the user name and "p" as the password/],
    ["another warehouse", databricks({ http_path: "/sql/1.0/warehouses/other" }), /not in/],
    ["another catalog", databricks({ catalog: "bronze" }), /not in this deployment/],
    ["another workspace", databricks({ host_url: "https://evil.example" }), /not in/],
    [
      "an unlisted Databricks secret",
      databricks({ credentials: { spn_clientid: "spn-id", spn_secret: "approvalserviceapikey" } }),
      /"approvalserviceapikey"/,
    ],
    [
      "the Databricks client secret as the client id",
      databricks({ credentials: { spn_clientid: "spn-secret", spn_secret: "spn-id" } }),
      /"spn-secret" as the client id and "spn-id" as the client secret/,
    ],
  ];
  for (const [name, source, message] of refused) {
    await t.step(name, () => {
      assert.throws(() => allowed.authorize(source), (e) => {
        assert.ok(e instanceof SourceNotAllowedError);
        assert.match(e.message, message);
        return true;
      });
    });
  }
  await t.step("everything, when nothing is listed", () => {
    assert.throws(() => AllowedSources.none().authorize(sql()), SourceNotAllowedError);
  });
});

Deno.test("AllowedSources.parse() reads the documented file and refuses anything else", async (t) => {
  const allowed = AllowedSources.parse(JSON.stringify({ sources: ENTRIES }));
  assert.equal(allowed.size, 4);
  const pg = ENTRIES[0]!;
  const bad: [string, string, RegExp][] = [
    ["not JSON", "not json", /JSON/],
    ["no sources", "{}", /sources/],
    ["a bad host", JSON.stringify({ sources: [{ ...pg, host: "a b" }] }), /host/],
    ["no login", JSON.stringify({ sources: [{ ...pg, credentials: [] }] }), /credentials/],
    ["no credentials", JSON.stringify({ sources: [{ ...pg, credentials: undefined }] }), /creden/],
    [
      "a secret name that leaves the store",
      JSON.stringify({
        sources: [{ ...pg, credentials: [{ username: "../etc/passwd", password: "p" }] }],
      }),
      /username/,
    ],
    [
      "a login without its password",
      JSON.stringify({ sources: [{ ...pg, credentials: [{ username: "u" }] }] }),
      /password/,
    ],
    [
      "a SQL login in Databricks roles",
      JSON.stringify({
        sources: [{ ...pg, credentials: [{ client_id: "u", client_secret: "p" }] }],
      }),
      /credentials/,
    ],
    [
      "a login with one secret in both roles",
      JSON.stringify({ sources: [{ ...pg, credentials: [{ username: "x", password: "x" }] }] }),
      /username and password must name two different secrets/,
    ],
    [
      "a Databricks login with one secret in both roles",
      JSON.stringify({
        sources: [{ ...ENTRIES[3], credentials: [{ client_id: "x", client_secret: "x" }] }],
      }),
      /client_id and client_secret must name two different secrets/,
    ],
    [
      "a password that is a user name in another entry",
      JSON.stringify({
        sources: [pg, { ...pg, credentials: [{ username: "pg-password", password: "other" }] }],
      }),
      /secret "pg-password" is a user name here and a password at sources\.0\.credentials\.0\.password/,
    ],
    [
      "a client secret that is a SQL user name",
      JSON.stringify({
        sources: [ENTRIES[3], { ...pg, credentials: [{ username: "spn-secret", password: "p" }] }],
      }),
      /secret "spn-secret" is a user name here and a client secret at/,
    ],
    [
      "the old secrets list",
      JSON.stringify({
        sources: [{ ...pg, credentials: undefined, secrets: ["pg-user", "pg-password"] }],
      }),
      /"secrets" is no longer accepted: .*"credentials": \[\{ "username": /,
    ],
    [
      "the old secrets list beside credentials",
      JSON.stringify({ sources: [{ ...pg, secrets: ["pg-user", "pg-password"] }] }),
      /"secrets" is no longer accepted/,
    ],
    [
      "the old secrets list of a Databricks entry",
      JSON.stringify({
        sources: [{ ...ENTRIES[3], credentials: undefined, secrets: ["spn-id", "spn-secret"] }],
      }),
      /"credentials": \[\{ "client_id": /,
    ],
    ["an unknown field", JSON.stringify({ sources: [{ ...pg, extra: true }] }), /extra/],
    ["an unknown engine", JSON.stringify({ sources: [{ ...pg, type: "oracle" }] }), /type/],
  ];
  for (const [name, text, message] of bad) {
    await t.step(name, () => {
      assert.throws(() => AllowedSources.parse(text), (e) => {
        const shown = e instanceof z.ZodError
          ? e.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")
          : String(e);
        assert.match(shown, message);
        return true;
      });
    });
  }
  await t.step("a secret may repeat in the same role", () => {
    const shared = { username: "pg-user", password: "pg-password" };
    const text = JSON.stringify({
      sources: [pg, { ...ENTRIES[2], credentials: [shared] }, { ...pg, credentials: [shared] }],
    });
    assert.equal(AllowedSources.parse(text).size, 3);
  });
});

Deno.test("AllowedSources.authorize() limits the schemas a dataset may be read from", async (t) => {
  const mysql: AllowedSource = {
    type: "mysql",
    host: "my.internal",
    port: 3306,
    database: "clinic",
    credentials: [{ username: "u", password: "p" }],
  };
  const listed: AllowedSource = { ...ENTRIES[0]!, schemas: ["oncology"] } as AllowedSource;
  const allowed = new AllowedSources([mysql, listed, ENTRIES[2]!]);
  const mysqlSource = sql({
    type: "mysql",
    host_url: "my.internal",
    port: 3306,
    database: "clinic",
    credentials: { username_key: "u", password_key: "p" },
  });
  await t.step("MySQL: only the entry's own database", () => {
    assert.deepEqual(allowed.authorize(mysqlSource, "clinic"), { host: "my.internal", port: 3306 });
    for (const other of ["other_db", "mysql", "information_schema", "Clinic"]) {
      assert.throws(() => allowed.authorize(mysqlSource, other), /Cannot read schema/, other);
    }
  });
  await t.step("a listed set of schemas, exactly", () => {
    assert.ok(allowed.authorize(sql(), "oncology"));
    assert.throws(() => allowed.authorize(sql(), "cardiology"), /Cannot read schema "cardiology"/);
  });
  await t.step("otherwise any schema but the system catalogues", () => {
    const mssql = sql({
      type: "mssql",
      host_url: "dw.internal",
      port: 1433,
      database: "dw",
      credentials: { username_key: "u", password_key: "p" },
    });
    assert.ok(allowed.authorize(mssql, "dbo"));
    for (const system of ["sys", "INFORMATION_SCHEMA", "pg_catalog", "pg_toast"]) {
      assert.throws(() => allowed.authorize(mssql, system), SourceNotAllowedError, system);
    }
  });
  await t.step("validate, which names no schema, checks only the source", () => {
    assert.ok(allowed.authorize(mysqlSource));
  });
});

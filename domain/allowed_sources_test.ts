import assert from "node:assert/strict";
import {
  type AllowedSource,
  AllowedSources,
  normalizeHost,
  SourceNotAllowedError,
} from "./allowed_sources.ts";
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
    secrets: ["pg-user", "pg-password"],
  },
  {
    type: "postgresql",
    host: "127.0.0.1",
    port: 5432,
    database: "research",
    secrets: ["pg-user-2", "pg-password-2"],
  },
  { type: "sqlserver", host: "DW.internal", port: 1433, database: "dw", secrets: ["u", "p"] },
  {
    type: "databrickssql",
    host: "adb-1.azuredatabricks.net",
    port: 443,
    http_path: "/sql/1.0/warehouses/abc",
    catalog: "gold",
    secrets: ["spn-id", "spn-secret"],
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
  // A second entry for the same database with other credentials.
  assert.deepEqual(allowed.authorize(sql({}, ["pg-user-2", "pg-password-2"])), {
    host: "127.0.0.1",
    port: 5432,
  });
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
    [
      "secrets from two entries mixed",
      sql({}, ["pg-user", "pg-password-2"]),
      /no allowed entry lists them all/,
    ],
    ["another warehouse", databricks({ http_path: "/sql/1.0/warehouses/other" }), /not in/],
    ["another catalog", databricks({ catalog: "bronze" }), /not in this deployment/],
    ["another workspace", databricks({ host_url: "https://evil.example" }), /not in/],
    [
      "an unlisted Databricks secret",
      databricks({ credentials: { spn_clientid: "spn-id", spn_secret: "approvalserviceapikey" } }),
      /"approvalserviceapikey"/,
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

Deno.test("AllowedSources.parse() reads the documented file and refuses anything else", () => {
  const allowed = AllowedSources.parse(JSON.stringify({ sources: ENTRIES }));
  assert.equal(allowed.size, 4);
  for (
    const bad of [
      "not json",
      "{}",
      JSON.stringify({ sources: [{ ...ENTRIES[0], host: "a b" }] }),
      JSON.stringify({ sources: [{ ...ENTRIES[0], secrets: [] }] }),
      JSON.stringify({ sources: [{ ...ENTRIES[0], secrets: ["../etc/passwd"] }] }),
      JSON.stringify({ sources: [{ ...ENTRIES[0], extra: true }] }),
      JSON.stringify({ sources: [{ ...ENTRIES[0], type: "oracle" }] }),
    ]
  ) {
    assert.throws(() => AllowedSources.parse(bad), bad);
  }
});

Deno.test("AllowedSources.authorize() limits the schemas a dataset may be read from", async (t) => {
  const mysql: AllowedSource = {
    type: "mysql",
    host: "my.internal",
    port: 3306,
    database: "clinic",
    secrets: ["u", "p"],
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

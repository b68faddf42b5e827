import assert from "node:assert/strict";
import type { CatalogTable } from "../../domain/catalog.ts";
import { SchemaNotFoundError, SourceUnavailableError } from "../../ports/source_database.ts";
import {
  type FakeDatabricks,
  type FakeDatabricksOptions,
  startFakeDatabricks,
} from "../../tests/support/fake_databricks.ts";
import type { FakeUcTable, FakeWorkspace } from "../../tests/support/fake_databricks_workspace.ts";
import { DatabricksTokenSource } from "./databricks_token.ts";
import { UnityCatalogClient, type UnityCatalogClientOptions } from "./unity_catalog.ts";

const CATALOG = "research_gold";
const UC = "/api/2.1/unity-catalog";

function table(name: string, tableType: string, extra: Partial<FakeUcTable> = {}): FakeUcTable {
  return {
    name,
    table_type: tableType,
    columns: [{ name: "id", type_name: "INT", type_text: "int", nullable: false }],
    rows: [],
    ...extra,
  };
}

const VISITS: FakeUcTable = {
  name: "visits",
  table_type: "MANAGED",
  comment: "",
  columns: [
    { name: "visit_id", type_name: "LONG", type_text: "bigint", nullable: false },
    {
      name: "patient_id",
      type_name: "INT",
      type_text: "int",
      nullable: false,
      comment: "Links to patients.id",
    },
    { name: "visit_date", type_name: "DATE", type_text: "date", comment: null },
    { name: "cost", type_name: "DECIMAL", type_text: "decimal(18,2)", comment: "Cost in GBP" },
    { name: "seen_at", type_name: "TIMESTAMP", type_text: "timestamp" },
  ],
  // Key order differs from column order.
  primaryKey: ["patient_id", "visit_id"],
  rows: [],
};

const PATIENTS: FakeUcTable = {
  name: "patients",
  table_type: "MANAGED",
  comment: "One row per patient",
  columns: [
    { name: "id", type_name: "INT", type_text: "int", nullable: false },
    { name: "age", type_name: "SHORT", type_text: "smallint" },
    { name: "flags", type_name: "BYTE", type_text: "tinyint" },
    { name: "born", type_name: "TIMESTAMP_NTZ", type_text: "timestamp_ntz" },
    { name: "tags", type_name: "ARRAY", type_text: "array<string>" },
    { name: "attrs", type_name: "MAP", type_text: "map<string,string>" },
    { name: "address", type_name: "STRUCT", type_text: "struct<street:string,zip:string>" },
    { name: "photo", type_name: "BINARY", type_text: "binary" },
  ],
  primaryKey: ["id"],
  rows: [],
};

/** Tables in a deliberately unsorted order; names chosen so UTF-16 and code-point order differ. */
function clinicalTables(): FakeUcTable[] {
  return [
    VISITS,
    table("\u{1F600}emoji", "MANAGED"),
    PATIENTS,
    table("active_patients", "VIEW", { primaryKey: ["id"], comment: "Patients seen this year" }),
    table("\uFF46ullwidth", "MANAGED"),
    table("daily_costs", "MATERIALIZED_VIEW"),
    table("Zulu", "EXTERNAL", { primaryKey: ["id"] }),
    table("cost_metrics", "METRIC_VIEW"),
    table("lab_results", "STREAMING_TABLE"),
  ];
}

function aWorkspace(): FakeWorkspace {
  return {
    catalog: CATALOG,
    clientId: "uc-test-client",
    clientSecret: "uc-test-secret-never-shown",
    schemas: [
      { name: "clinical", comment: "Clinical data", tables: clinicalTables() },
      { name: "empty", comment: null, tables: [] },
      { name: "blank", comment: "", tables: [] },
      {
        name: "a b/c",
        tables: [table("t?x#y", "MANAGED"), table("plain", "MANAGED")],
      },
      {
        name: "broken",
        tables: [{
          name: "bad_decimal",
          table_type: "MANAGED",
          columns: [{ name: "d", type_name: "DECIMAL", type_text: "decimal(x)" }],
          rows: [],
        }],
      },
    ],
  };
}

interface Harness extends AsyncDisposable {
  readonly fake: FakeDatabricks;
  readonly tokens: DatabricksTokenSource;
  readonly uc: UnityCatalogClient;
}

async function harness(
  options: FakeDatabricksOptions = {},
  clientOptions: Partial<UnityCatalogClientOptions> = {},
): Promise<Harness> {
  const workspace = aWorkspace();
  const fake = await startFakeDatabricks(workspace, options);
  const tokens = new DatabricksTokenSource({
    baseUrl: fake.url,
    clientId: workspace.clientId,
    clientSecret: workspace.clientSecret,
    timeoutMs: 5_000,
    caCertificates: [fake.caCertificate],
  });
  const uc = new UnityCatalogClient({
    baseUrl: fake.url,
    tokens,
    timeoutMs: 5_000,
    caCertificates: [fake.caCertificate],
    ...clientOptions,
  });
  return {
    fake,
    tokens,
    uc,
    async [Symbol.asyncDispose]() {
      uc.close();
      tokens.close();
      await fake.close();
    },
  };
}

function apiRequests(fake: FakeDatabricks) {
  return fake.requests.filter((r) => r.path.startsWith(UC));
}

Deno.test("UnityCatalogClient.describeSchema() lists every table across pages, sorted by code point", async () => {
  await using h = await harness({ pageSize: 2 });

  const catalog = await h.uc.describeSchema(CATALOG, "clinical");

  assert.equal(catalog.name, "clinical");
  assert.equal(catalog.description, "Clinical data");
  assert.deepEqual(catalog.tables.map((t) => t.name), [
    "Zulu",
    "active_patients",
    "cost_metrics",
    "daily_costs",
    "lab_results",
    "patients",
    "visits",
    "\uFF46ullwidth",
    "\u{1F600}emoji",
  ]);
  const lists = apiRequests(h.fake).filter((r) => r.path === `${UC}/tables`);
  assert.equal(lists.length, 5);
  for (const [i, request] of lists.entries()) {
    assert.equal(request.method, "GET");
    assert.equal(request.query.catalog_name, CATALOG);
    assert.equal(request.query.schema_name, "clinical");
    assert.equal(request.query.max_results, "50");
    assert.equal("page_token" in request.query, i > 0);
  }
  const tokens = lists.slice(1).map((r) => r.query.page_token);
  assert.equal(new Set(tokens).size, tokens.length);
  assert.deepEqual(apiRequests(h.fake)[0], {
    method: "GET",
    path: `${UC}/schemas/${CATALOG}.clinical`,
    query: {},
  });
});

Deno.test("UnityCatalogClient.describeSchema() sends the configured page size", async () => {
  await using h = await harness({ pageSize: 100 }, { pageSize: 4 });

  const catalog = await h.uc.describeSchema(CATALOG, "clinical");

  assert.equal(catalog.tables.length, 9);
  const lists = apiRequests(h.fake).filter((r) => r.path === `${UC}/tables`);
  assert.deepEqual(lists.map((r) => r.query.max_results), ["4", "4", "4"]);
});

Deno.test("UnityCatalogClient.describeSchema() maps columns, types, comments and primary keys", async () => {
  await using h = await harness({ columnOrder: "reversed" });

  const catalog = await h.uc.describeSchema(CATALOG, "clinical");
  const byName = new Map(catalog.tables.map((t) => [t.name, t]));

  const visits: CatalogTable = {
    name: "visits",
    kind: "table",
    description: null,
    columns: [
      {
        name: "visit_id",
        dataType: "bigint",
        logicalType: { kind: "bigint" },
        nullable: false,
        description: null,
      },
      {
        name: "patient_id",
        dataType: "int",
        logicalType: { kind: "integer" },
        nullable: false,
        description: "Links to patients.id",
      },
      {
        name: "visit_date",
        dataType: "date",
        logicalType: { kind: "date" },
        nullable: true,
        description: null,
      },
      {
        name: "cost",
        dataType: "decimal(18,2)",
        logicalType: { kind: "decimal", precision: 18, scale: 2 },
        nullable: true,
        description: "Cost in GBP",
      },
      {
        name: "seen_at",
        dataType: "timestamp",
        logicalType: { kind: "timestamptz" },
        nullable: true,
        description: null,
      },
    ],
    primaryKey: ["patient_id", "visit_id"],
  };
  assert.deepEqual(byName.get("visits"), visits);

  const patients = byName.get("patients");
  assert.equal(patients?.description, "One row per patient");
  assert.deepEqual(patients?.primaryKey, ["id"]);
  assert.deepEqual(
    patients?.columns.map((c) => [c.name, c.dataType, c.logicalType.kind]),
    [
      ["id", "int", "integer"],
      ["age", "smallint", "smallint"],
      ["flags", "tinyint", "smallint"],
      ["born", "timestamp_ntz", "timestamp"],
      ["tags", "array<string>", "json"],
      ["attrs", "map<string,string>", "json"],
      ["address", "struct<street:string,zip:string>", "json"],
      ["photo", "binary", "binary"],
    ],
  );
});

Deno.test("UnityCatalogClient.describeSchema() marks views and gives them no primary key", async () => {
  await using h = await harness();

  const catalog = await h.uc.describeSchema(CATALOG, "clinical");
  const kinds = Object.fromEntries(
    catalog.tables.map((t) => [t.name, [t.kind, t.primaryKey.join(",")]]),
  );

  assert.deepEqual(kinds["active_patients"], ["view", ""]);
  assert.deepEqual(kinds["daily_costs"], ["view", ""]);
  assert.deepEqual(kinds["cost_metrics"], ["view", ""]);
  assert.deepEqual(kinds["Zulu"], ["table", "id"]);
  assert.deepEqual(kinds["lab_results"], ["table", ""]);
  assert.equal(
    catalog.tables.find((t) => t.name === "active_patients")?.description,
    "Patients seen this year",
  );
});

Deno.test("UnityCatalogClient.describeSchema() gives a schema without a comment no description", async () => {
  await using h = await harness();

  assert.deepEqual(await h.uc.describeSchema(CATALOG, "empty"), {
    name: "empty",
    description: null,
    tables: [],
  });
  assert.deepEqual(await h.uc.describeSchema(CATALOG, "blank"), {
    name: "blank",
    description: null,
    tables: [],
  });
});

Deno.test("UnityCatalogClient.describeSchema() throws SchemaNotFoundError for a missing schema or catalog", async () => {
  await using h = await harness();

  await assert.rejects(h.uc.describeSchema(CATALOG, "nope"), (e: unknown) => {
    assert.ok(e instanceof SchemaNotFoundError);
    assert.equal(e.schema, "nope");
    return true;
  });
  await assert.rejects(h.uc.describeSchema("no_catalog", "clinical"), SchemaNotFoundError);
  const before = h.fake.requests.length;
  // Names Unity Catalog cannot hold are not sent at all.
  await assert.rejects(h.uc.describeSchema(CATALOG, "clinical.visits"), SchemaNotFoundError);
  await assert.rejects(h.uc.describeSchema(CATALOG, ""), SchemaNotFoundError);
  await assert.rejects(h.uc.describeSchema(CATALOG, "bad\uD800"), SchemaNotFoundError);
  assert.equal(h.fake.requests.length, before);
});

Deno.test("UnityCatalogClient.describeSchema() fetches only the named tables", async () => {
  await using h = await harness();

  const catalog = await h.uc.describeSchema(CATALOG, "clinical", {
    tables: ["visits", "missing", "active_patients", "visits", "PATIENTS", "a.b"],
  });

  assert.equal(catalog.description, "Clinical data");
  assert.deepEqual(catalog.tables.map((t) => [t.name, t.kind]), [
    ["active_patients", "view"],
    ["visits", "table"],
  ]);
  assert.deepEqual(catalog.tables[1]?.primaryKey, ["patient_id", "visit_id"]);
  const requests = apiRequests(h.fake);
  assert.ok(!requests.some((r) => r.path === `${UC}/tables`), "no list call");
  const gets = requests.filter((r) => r.path.startsWith(`${UC}/tables/`));
  assert.deepEqual(gets.map((r) => r.path).sort(), [
    `${UC}/tables/${CATALOG}.clinical.PATIENTS`,
    `${UC}/tables/${CATALOG}.clinical.active_patients`,
    `${UC}/tables/${CATALOG}.clinical.missing`,
    `${UC}/tables/${CATALOG}.clinical.visits`,
  ]);
  for (const get of gets) assert.deepEqual(get.query, { include_browse: "true" });
});

Deno.test("UnityCatalogClient.describeSchema() with an empty table list describes no table", async () => {
  await using h = await harness();

  const catalog = await h.uc.describeSchema(CATALOG, "clinical", { tables: [] });

  assert.deepEqual(catalog, { name: "clinical", description: "Clinical data", tables: [] });
  assert.equal(apiRequests(h.fake).length, 1);
});

Deno.test("UnityCatalogClient.describeSchema() still checks the schema when tables are named", async () => {
  await using h = await harness();

  await assert.rejects(
    h.uc.describeSchema(CATALOG, "nope", { tables: ["visits"] }),
    SchemaNotFoundError,
  );
});

Deno.test("UnityCatalogClient.describeSchema() percent-encodes path segments and query values", async () => {
  await using h = await harness();

  const all = await h.uc.describeSchema(CATALOG, "a b/c");
  const one = await h.uc.describeSchema(CATALOG, "a b/c", { tables: ["t?x#y"] });

  assert.deepEqual(all.tables.map((t) => t.name), ["plain", "t?x#y"]);
  assert.deepEqual(one.tables.map((t) => t.name), ["t?x#y"]);
  const paths = apiRequests(h.fake).map((r) => r.path);
  assert.ok(paths.includes(`${UC}/schemas/${CATALOG}.a%20b%2Fc`), paths.join("\n"));
  assert.ok(paths.includes(`${UC}/tables/${CATALOG}.a%20b%2Fc.t%3Fx%23y`), paths.join("\n"));
  const list = apiRequests(h.fake).find((r) => r.path === `${UC}/tables`);
  assert.equal(list?.query.schema_name, "a b/c");
});

Deno.test("UnityCatalogClient.describeSchema() gets a new token once when the old one expires", async () => {
  await using h = await harness();

  await h.uc.describeSchema(CATALOG, "clinical", { tables: ["visits"] });
  assert.equal(h.fake.tokensIssued, 1);
  h.fake.expireTokens();
  const catalog = await h.uc.describeSchema(CATALOG, "clinical");

  assert.equal(catalog.tables.length, 9);
  assert.equal(h.fake.tokensIssued, 2);
  const paths = h.fake.requests.map((r) => r.path);
  const afterExpiry = paths.slice(paths.lastIndexOf(`${UC}/tables/${CATALOG}.clinical.visits`) + 1);
  assert.deepEqual(afterExpiry.slice(0, 3), [
    `${UC}/schemas/${CATALOG}.clinical`,
    "/oidc/v1/token",
    `${UC}/schemas/${CATALOG}.clinical`,
  ]);
});

Deno.test("UnityCatalogClient.describeSchema() gives up after a second 401", async () => {
  await using h = await harness();
  const body = { error_code: "UNAUTHENTICATED", message: "Token is not valid here." };
  h.fake.failNext(`${UC}/schemas/`, 401, body);
  h.fake.failNext(`${UC}/schemas/`, 401, body);

  const error = await h.uc.describeSchema(CATALOG, "clinical").then(() => undefined, (e) => e);

  assert.ok(error instanceof SourceUnavailableError);
  assert.equal(
    error.message,
    `Cannot read schema "${CATALOG}.clinical" from Unity Catalog: Databricks did not accept ` +
      "a new access token either (HTTP 401 UNAUTHENTICATED: Token is not valid here.)",
  );
  assert.equal(h.fake.tokensIssued, 2);
  const current = await h.tokens.token();
  assert.ok(!error.message.includes(current));
});

Deno.test("UnityCatalogClient.describeSchema() reports 403 as access denied with Databricks' message", async () => {
  await using h = await harness();
  h.fake.failNext(`${UC}/tables`, 403, {
    error_code: "PERMISSION_DENIED",
    message: "User does not have USE SCHEMA on Schema 'research_gold.clinical'.",
  });

  await assert.rejects(h.uc.describeSchema(CATALOG, "clinical"), (e: unknown) => {
    assert.ok(e instanceof SourceUnavailableError);
    assert.equal(
      e.message,
      `Cannot list the tables of schema "${CATALOG}.clinical" in Unity Catalog: access denied ` +
        "by Databricks (HTTP 403 PERMISSION_DENIED: User does not have USE SCHEMA on Schema " +
        "'research_gold.clinical'.)",
    );
    return true;
  });
});

Deno.test("UnityCatalogClient.describeSchema() reports other errors with status and error code", async () => {
  await using h = await harness();
  h.fake.failNext(`${UC}/tables/`, 500, { error_code: "INTERNAL_ERROR", message: "Boom." });

  await assert.rejects(
    h.uc.describeSchema(CATALOG, "clinical", { tables: ["visits", "patients"] }),
    (e: unknown) => {
      assert.ok(e instanceof SourceUnavailableError);
      assert.match(
        e.message,
        /^Cannot read table "research_gold\.clinical\.(visits|patients)" from Unity Catalog: HTTP 500 INTERNAL_ERROR: Boom\.$/,
      );
      return true;
    },
  );
  h.fake.replyNext(`${UC}/schemas/`, 502, "<html>Bad gateway</html>");
  await assert.rejects(h.uc.describeSchema(CATALOG, "clinical"), (e: unknown) => {
    assert.ok(e instanceof SourceUnavailableError);
    assert.match(e.message, /: HTTP 502 "<html>Bad gateway<\/html>"$/);
    return true;
  });
});

Deno.test("UnityCatalogClient.describeSchema() treats a 404 for an unknown endpoint as unavailable", async () => {
  await using h = await harness();
  h.fake.failNext(`${UC}/schemas/`, 404, {
    error_code: "ENDPOINT_NOT_FOUND",
    message: "No API found for 'GET /unity-catalog/schemas/x'",
  });

  await assert.rejects(h.uc.describeSchema(CATALOG, "clinical"), SourceUnavailableError);
});

Deno.test("UnityCatalogClient.describeSchema() stops when a page token comes back twice", async () => {
  await using h = await harness();
  h.fake.replyNext(`${UC}/tables`, 200, { tables: [], next_page_token: "again" });
  h.fake.replyNext(`${UC}/tables`, 200, { tables: [], next_page_token: "again" });

  await assert.rejects(h.uc.describeSchema(CATALOG, "clinical"), (e: unknown) => {
    assert.ok(e instanceof SourceUnavailableError);
    assert.match(e.message, /sent the same page token twice$/);
    return true;
  });
  assert.equal(apiRequests(h.fake).filter((r) => r.path === `${UC}/tables`).length, 2);
});

Deno.test("UnityCatalogClient.describeSchema() rejects replies of the wrong shape", async () => {
  await using h = await harness();
  h.fake.replyNext(`${UC}/tables`, 200, { tables: "not a list" });

  await assert.rejects(h.uc.describeSchema(CATALOG, "clinical"), (e: unknown) => {
    assert.ok(e instanceof SourceUnavailableError);
    assert.match(e.message, /Databricks sent an unexpected reply \(tables: /);
    return true;
  });
  await assert.rejects(h.uc.describeSchema(CATALOG, "broken"), (e: unknown) => {
    assert.ok(e instanceof SourceUnavailableError);
    assert.match(
      e.message,
      /^Cannot describe column "d" of "research_gold\.broken\.bad_decimal": Cannot parse Databricks decimal type "decimal\(x\)"/,
    );
    return true;
  });
});

Deno.test("UnityCatalogClient refuses a workspace whose certificate is not trusted", async () => {
  await using h = await harness();
  using untrusting = new UnityCatalogClient({
    baseUrl: h.fake.url,
    tokens: h.tokens,
    timeoutMs: 5_000,
  });

  await assert.rejects(untrusting.describeSchema(CATALOG, "clinical"), (e: unknown) => {
    assert.ok(e instanceof SourceUnavailableError);
    assert.match(e.message, /^Cannot read schema "research_gold\.clinical" from Unity Catalog: /);
    assert.match(e.message, /certificate|UnknownIssuer/i);
    return true;
  });
  assert.equal(apiRequests(h.fake).length, 0);
});

Deno.test("UnityCatalogClient times out on a workspace that never answers", async () => {
  await using h = await harness();
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
    using silent = new UnityCatalogClient({
      baseUrl: `https://127.0.0.1:${listener.addr.port}`,
      tokens: h.tokens,
      timeoutMs: 150,
    });
    await assert.rejects(silent.describeSchema(CATALOG, "clinical"), (e: unknown) => {
      assert.ok(e instanceof SourceUnavailableError);
      assert.match(e.message, /: no complete reply within 150 ms$/);
      return true;
    });
  } finally {
    listener.close();
    await accepting;
    for (const conn of held) conn.close();
  }
});

Deno.test("UnityCatalogClient refuses bad options and use after close", async () => {
  await using h = await harness();
  const base = { baseUrl: h.fake.url, tokens: h.tokens, timeoutMs: 1_000 };
  assert.throws(
    () => new UnityCatalogClient({ ...base, baseUrl: `http://127.0.0.1:${h.fake.port}` }),
    TypeError,
  );
  assert.throws(() => new UnityCatalogClient({ ...base, timeoutMs: 0 }), RangeError);
  assert.throws(() => new UnityCatalogClient({ ...base, pageSize: -1 }), RangeError);
  assert.throws(() => new UnityCatalogClient({ ...base, pageSize: 1.5 }), RangeError);

  h.uc.close();
  h.uc.close();
  await assert.rejects(h.uc.describeSchema(CATALOG, "clinical"), SourceUnavailableError);
  assert.equal(h.fake.requests.length, 0);
});

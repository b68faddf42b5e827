import assert from "node:assert/strict";
import type { z } from "zod";
import {
  DataContractPublishRequest,
  DataContractSourceAccessRequest,
  DataContractTransferRequest,
  DatasetMetadataPayload,
  PublishPayload,
  StageTransferPayload,
} from "./contract.ts";
import { sourceEngine } from "./source_engine.ts";

type Json = Record<string, unknown>;

/** The example request of `cr8tor-contract.md` §1.1 (Databricks source, DuckDB filestore destination). */
function databricksExample(): Json {
  return {
    project_name: "Pr042",
    project_start_time: "20250611_093000",
    destination: { name: "LSC", type: "filestore", format: "duckdb" },
    extract_config: { backend_engine: "pyarrow" },
    source: {
      type: "databrickssql",
      host_url: "https://adb-5550001.1.azuredatabricks.net",
      http_path: "/sql/1.0/warehouses/f00dfeed",
      port: 443,
      catalog: "research_gold",
      credentials: {
        provider: "AzureKeyVault",
        username_key: "",
        password_key: "",
        spn_clientid: "databricksspnclientid",
        spn_secret: "databricksspnsecret",
      },
    },
    dataset: {
      name: "oncology_extract",
      schema_name: "oncology",
      description: "Tumour staging extract",
      tables: [{ name: "tumour_stage", columns: [{ name: "stage_id" }, { name: "stage_label" }] }],
      staging_path: null,
      publish_path: null,
    },
  };
}

function sqlSource(type: string, overrides: Json = {}): Json {
  return {
    type,
    host_url: "db.internal",
    port: 5432,
    database: "research",
    credentials: {
      provider: "AzureKeyVault",
      username_key: "sourceuser",
      password_key: "sourcepassword",
    },
    ...overrides,
  };
}

function databricksSource(overrides: Json = {}): Json {
  return { ...(databricksExample().source as Json), ...overrides };
}

/** A transfer request with a SQL source of `type` and the given top-level overrides. */
function sqlRequest(type: string, overrides: Json = {}): Json {
  return { ...databricksExample(), source: sqlSource(type), ...overrides };
}

function parseOk<T>(schema: z.ZodType<T>, body: unknown): T {
  const result = schema.safeParse(body);
  if (!result.success) {
    assert.fail(`expected success, got ${JSON.stringify(result.error.issues, null, 2)}`);
  }
  return result.data;
}

/** Parses `body`, expects failure and returns each issue's path joined with `.`. */
function issuePaths(schema: z.ZodType, body: unknown): string[] {
  const result = schema.safeParse(body);
  assert.equal(result.success, false, `expected ${JSON.stringify(body)} to be rejected`);
  return (result.error?.issues ?? []).map((issue) => issue.path.join("."));
}

function assertRejectedAt(schema: z.ZodType, body: unknown, path: string): void {
  const paths = issuePaths(schema, body);
  assert.ok(paths.includes(path), `expected an issue at "${path}", got ${JSON.stringify(paths)}`);
}

// ---------------------------------------------------------------------------------------------------------
// Valid requests

Deno.test("DataContractTransferRequest parses the contract's Databricks example (§1.1)", () => {
  const parsed = parseOk(DataContractTransferRequest, databricksExample());
  assert.deepEqual(parsed, databricksExample());
});

Deno.test("DataContractSourceAccessRequest and DataContractPublishRequest parse the §1.1 example", () => {
  const access = parseOk(DataContractSourceAccessRequest, databricksExample());
  assert.equal("dataset" in access, false);
  assert.deepEqual(access.source, databricksExample().source);

  const publish = parseOk(DataContractPublishRequest, databricksExample());
  assert.deepEqual(Object.keys(publish).sort(), [
    "destination",
    "project_name",
    "project_start_time",
  ]);
});

Deno.test("DataContractPublishRequest parses the contract's publish body (§1.3)", () => {
  const body = {
    "project_name": "Pr042",
    "project_start_time": "20250611_093000",
    destination: { name: "LSC", type: "filestore", format: "duckdb" },
  };
  assert.deepEqual(parseOk(DataContractPublishRequest, body), body);
});

Deno.test("DataContractTransferRequest parses MySQL and PostgreSQL requests", async (t) => {
  for (const type of ["mysql", "postgresql"]) {
    await t.step(type, () => {
      const body = sqlRequest(type, {
        source: sqlSource(type, { port: type === "mysql" ? 3306 : 5432 }),
      });
      const parsed = parseOk(DataContractTransferRequest, body);
      assert.deepEqual(parsed.source, body.source);
      assert.equal(sourceEngine(parsed.source), type);
    });
  }
});

Deno.test("sourceEngine() maps 'sqlserver' to 'mssql' and keeps 'mssql'", async (t) => {
  const cases: [type: string, engine: string][] = [
    ["sqlserver", "mssql"],
    ["mssql", "mssql"],
    ["mysql", "mysql"],
    ["postgresql", "postgresql"],
  ];
  for (const [type, engine] of cases) {
    await t.step(`${type} -> ${engine}`, () => {
      const parsed = parseOk(
        DataContractTransferRequest,
        sqlRequest(type, { source: sqlSource(type, { port: 1433 }) }),
      );
      assert.equal(parsed.source.type, type, "the request itself is never rewritten");
      assert.equal(sourceEngine(parsed.source), engine);
    });
  }
  await t.step("databrickssql -> databrickssql", () => {
    const parsed = parseOk(DataContractTransferRequest, databricksExample());
    assert.equal(sourceEngine(parsed.source), "databrickssql");
  });
});

// ---------------------------------------------------------------------------------------------------------
// Discriminators

Deno.test("DataContractTransferRequest rejects unknown or wrongly cased source types", async (t) => {
  for (const type of ["DatabricksSQL", "oracle", "MySQL", "sqlite", "", "databricks"]) {
    await t.step(JSON.stringify(type), () => {
      const body = sqlRequest(type, { source: { ...databricksSource(), type } });
      assertRejectedAt(DataContractTransferRequest, body, "source.type");
    });
  }
  await t.step("missing type", () => {
    const { type: _type, ...source } = sqlSource("mysql");
    assertRejectedAt(DataContractTransferRequest, sqlRequest("mysql", { source }), "source.type");
  });
});

Deno.test("DataContractPublishRequest rejects bad destinations", async (t) => {
  const cases: [label: string, destination: unknown, path: string][] = [
    [
      "format 'CSV' (wrong case)",
      { name: "LSC", type: "filestore", format: "CSV" },
      "destination.format",
    ],
    [
      "format 'parquet'",
      { name: "LSC", type: "filestore", format: "parquet" },
      "destination.format",
    ],
    [
      "type 'Filestore' (wrong case)",
      { name: "LSC", type: "Filestore", format: "csv" },
      "destination.type",
    ],
    ["type 'CSV'", { name: "LSC", type: "CSV", format: "csv" }, "destination.type"],
    ["missing type", { name: "LSC", format: "csv" }, "destination.type"],
    ["filestore without name", { type: "filestore", format: "csv" }, "destination.name"],
    ["filestore without format", { name: "LSC", type: "filestore" }, "destination.format"],
    [
      "filestore name with '/'",
      { name: "../x", type: "filestore", format: "csv" },
      "destination.name",
    ],
    [
      "filestore name with '-'",
      { name: "L-SC", type: "filestore", format: "csv" },
      "destination.name",
    ],
    ["filestore name empty", { name: "", type: "filestore", format: "csv" }, "destination.name"],
    ["postgresql format 'csv'", { type: "postgresql", format: "csv" }, "destination.format"],
    ["postgresql name with '/'", { type: "postgresql", name: "a/b" }, "destination.name"],
    ["missing destination", undefined, "destination"],
    ["null destination", null, "destination"],
  ];
  for (const [label, destination, path] of cases) {
    await t.step(label, () => {
      const body = {
        "project_name": "Pr042",
        "project_start_time": "20250611_093000",
        destination,
      };
      assertRejectedAt(DataContractPublishRequest, body, path);
    });
  }
});

Deno.test("DataContractPublishRequest defaults a postgresql destination's name to '' and format to 'sql'", () => {
  const parsed = parseOk(DataContractPublishRequest, {
    project_name: "Pr042",
    project_start_time: "20250611_093000",
    destination: { type: "postgresql" },
  });
  assert.deepEqual(parsed.destination, { type: "postgresql", name: "", format: "sql" });
});

// ---------------------------------------------------------------------------------------------------------
// Ports, defaults and unknown keys

Deno.test("DataContractTransferRequest defaults a Databricks port to 443", () => {
  const { port: _port, ...source } = databricksSource();
  const parsed = parseOk(DataContractTransferRequest, { ...databricksExample(), source });
  assert.equal(parsed.source.port, 443);
});

Deno.test("DataContractTransferRequest coerces a numeric port string", async (t) => {
  const cases: [port: unknown, expected: number][] = [
    ["1433", 1433],
    [1433, 1433],
    ["1", 1],
    ["65535", 65535],
  ];
  for (const [port, expected] of cases) {
    await t.step(JSON.stringify(port), () => {
      const parsed = parseOk(
        DataContractTransferRequest,
        sqlRequest("sqlserver", { source: sqlSource("sqlserver", { port }) }),
      );
      assert.equal(parsed.source.port, expected);
    });
  }
  await t.step("Databricks '8443'", () => {
    const parsed = parseOk(DataContractTransferRequest, {
      ...databricksExample(),
      source: databricksSource({ port: "8443" }),
    });
    assert.equal(parsed.source.port, 8443);
  });
});

Deno.test("DataContractTransferRequest rejects bad ports", async (t) => {
  const ports: unknown[] = ["abc", 0, 70000, 65536, -1, 1.5, "", null, "14 33", undefined];
  for (const port of ports) {
    await t.step(String(JSON.stringify(port)), () => {
      const source = sqlSource("mysql", { port });
      if (port === undefined) delete source.port;
      assertRejectedAt(DataContractTransferRequest, sqlRequest("mysql", { source }), "source.port");
    });
  }
  await t.step("Databricks 0", () => {
    const body = { ...databricksExample(), source: databricksSource({ port: 0 }) };
    assertRejectedAt(DataContractTransferRequest, body, "source.port");
  });
});

Deno.test("DataContractSourceAccessRequest defaults extract_config and allows null", async (t) => {
  const cases: [label: string, value: unknown, expected: unknown][] = [
    ["omitted", undefined, { backend_engine: "pyarrow" }],
    ["null", null, null],
    ["empty object", {}, { backend_engine: "pyarrow" }],
    ["any engine string", { backend_engine: "sqlalchemy" }, { backend_engine: "sqlalchemy" }],
  ];
  for (const [label, value, expected] of cases) {
    await t.step(label, () => {
      const body = databricksExample();
      if (value === undefined) delete body.extract_config;
      else body.extract_config = value;
      for (const schema of [DataContractSourceAccessRequest, DataContractTransferRequest]) {
        assert.deepEqual(parseOk(schema, body).extract_config, expected);
      }
    });
  }
});

Deno.test("DataContractTransferRequest strips unknown keys at every level", () => {
  const body = databricksExample();
  body.unknown_top = 1;
  const source = body.source as Json;
  Object.assign(source, { name: "toml-name", schema_name: "x", table: "y" });
  Object.assign(source.credentials as Json, { tenant: "t" });
  Object.assign(body.destination as Json, { extra: true });
  Object.assign(body.extract_config as Json, { chunk_size: 10 });
  const dataset = body.dataset as Json;
  dataset.catalog = "research_gold";
  const table = (dataset.tables as Json[])[0] as Json;
  table.row_count = 3;
  ((table.columns as Json[])[0] as Json).pii = true;

  const parsed = parseOk(DataContractTransferRequest, body);
  assert.deepEqual(parsed, databricksExample());
  assert.equal("unknown_top" in parsed, false);
  assert.equal("name" in parsed.source, false);
  assert.equal("tenant" in parsed.source.credentials, false);
  assert.equal("catalog" in parsed.dataset, false);
});

Deno.test("DataContractSourceAccessRequest and DataContractPublishRequest strip keys they do not know", () => {
  const access = parseOk(DataContractSourceAccessRequest, databricksExample()) as Json;
  assert.deepEqual(Object.keys(access).sort(), [
    "destination",
    "extract_config",
    "project_name",
    "project_start_time",
    "source",
  ]);
  const publish = parseOk(DataContractPublishRequest, databricksExample()) as Json;
  assert.equal("source" in publish, false);
  assert.equal("extract_config" in publish, false);
  assert.equal("dataset" in publish, false);
});

// ---------------------------------------------------------------------------------------------------------
// Dataset

Deno.test("DataContractTransferRequest accepts dataset tables null, [] or omitted", async (t) => {
  const cases: [label: string, tables: unknown][] = [
    ["null", null],
    ["[]", []],
    ["omitted", undefined],
  ];
  for (const [label, tables] of cases) {
    await t.step(label, () => {
      const dataset: Json = { "schema_name": "oncology" };
      if (tables !== undefined) dataset.tables = tables;
      const parsed = parseOk(DataContractTransferRequest, { ...databricksExample(), dataset });
      assert.deepEqual(parsed.dataset.tables, tables);
    });
  }
});

Deno.test("DataContractTransferRequest accepts table columns null, [] or omitted", async (t) => {
  for (const columns of [null, [], undefined]) {
    await t.step(String(JSON.stringify(columns)), () => {
      const table: Json = { name: "tumour_stage" };
      if (columns !== undefined) table.columns = columns;
      const dataset = { "schema_name": "oncology", tables: [table] };
      const parsed = parseOk(DataContractTransferRequest, { ...databricksExample(), dataset });
      assert.deepEqual(parsed.dataset.tables?.[0]?.columns, columns);
    });
  }
});

Deno.test("DataContractTransferRequest rejects duplicate table names at dataset.tables", () => {
  const dataset = {
    "schema_name": "oncology",
    tables: [{ name: "tumour_stage" }, { name: "treatment_line" }, { name: "tumour_stage" }],
  };
  const paths = issuePaths(DataContractTransferRequest, { ...databricksExample(), dataset });
  assert.deepEqual(paths, ["dataset.tables"]);
});

Deno.test("DataContractTransferRequest rejects duplicate column names at the table's columns", () => {
  const dataset = {
    "schema_name": "oncology",
    tables: [
      { name: "treatment_line" },
      { name: "tumour_stage", columns: [{ name: "stage_id" }, { name: "stage_id" }] },
    ],
  };
  const paths = issuePaths(DataContractTransferRequest, { ...databricksExample(), dataset });
  assert.deepEqual(paths, ["dataset.tables.1.columns"]);
});

Deno.test("DataContractTransferRequest treats names differing in case as distinct", () => {
  const dataset = {
    "schema_name": "oncology",
    tables: [
      { name: "Stage", columns: [{ name: "id" }, { name: "ID" }] },
      { name: "stage" },
    ],
  };
  parseOk(DataContractTransferRequest, { ...databricksExample(), dataset });
});

Deno.test("DataContractTransferRequest rejects unsafe identifiers", async (t) => {
  const bad = [
    ["double quote", 'a"b'],
    ["single quote", "a'b"],
    ["semicolon", "a;drop table x"],
    ["space", "a b"],
    ["SQL comment", "a --"],
    ["leading '--'", "--a"],
    ["Cyrillic 'а'", "d\u0430ta"],
    ["'.'", "a.b"],
    ["'/'", "../x"],
    ["empty", ""],
    ["129 characters", "a".repeat(129)],
  ];
  const places: [path: string, build: (name: string) => Json][] = [
    ["dataset.schema_name", (name) => ({ dataset: { schema_name: name } })],
    [
      "dataset.tables.0.name",
      (name) => ({ dataset: { schema_name: "s", tables: [{ name }] } }),
    ],
    [
      "dataset.tables.0.columns.1.name",
      (name) => ({
        dataset: { schema_name: "s", tables: [{ name: "t", columns: [{ name: "ok" }, { name }] }] },
      }),
    ],
    ["source.catalog", (name) => ({ source: databricksSource({ catalog: name }) })],
    ["source.database", (name) => ({ source: sqlSource("mysql", { database: name }) })],
  ];
  for (const [path, build] of places) {
    for (const [label, name] of bad) {
      await t.step(`${path} ${label}`, () => {
        assertRejectedAt(
          DataContractTransferRequest,
          { ...databricksExample(), ...build(name as string) },
          path,
        );
      });
    }
  }
});

Deno.test("DataContractTransferRequest rejects unsafe secret names", async (t) => {
  const bad = [
    ["'..'", ".."],
    ["'../etc/passwd'", "../etc/passwd"],
    ["'%2e%2e%2f'", "%2e%2e%2fpasswd"],
    ["absolute path", "/etc/passwd"],
    ["backslash", "..\\secret"],
    ["NUL", "secret\0"],
    ["leading dot", ".env"],
  ];
  const places: [label: string, path: string, build: (name: string) => Json][] = [
    ["SQL", "source.credentials.username_key", (name) => ({
      source: sqlSource("mysql", { credentials: { username_key: name, password_key: "p" } }),
    })],
    ["SQL", "source.credentials.password_key", (name) => ({
      source: sqlSource("mysql", { credentials: { username_key: "u", password_key: name } }),
    })],
    ["Databricks", "source.credentials.spn_clientid", (name) => ({
      source: databricksSource({ credentials: { spn_clientid: name, spn_secret: "s" } }),
    })],
    ["Databricks", "source.credentials.spn_secret", (name) => ({
      source: databricksSource({ credentials: { spn_clientid: "c", spn_secret: name } }),
    })],
    ["Databricks", "source.credentials.username_key", (name) => ({
      source: databricksSource({
        credentials: { spn_clientid: "c", spn_secret: "s", username_key: name },
      }),
    })],
    ["Databricks", "source.credentials.password_key", (name) => ({
      source: databricksSource({
        credentials: { spn_clientid: "c", spn_secret: "s", password_key: name },
      }),
    })],
  ];
  for (const [kind, path, build] of places) {
    for (const [label, name] of bad) {
      await t.step(`${kind} ${path} ${label}`, () => {
        const body = { ...databricksExample(), ...build(name as string) };
        assertRejectedAt(DataContractTransferRequest, body, path);
      });
    }
  }
});

Deno.test("DataContractTransferRequest requires a SQL source's secret names, not empty strings", () => {
  const body = sqlRequest("mysql", {
    source: sqlSource("mysql", { credentials: { username_key: "", password_key: "" } }),
  });
  assert.deepEqual(issuePaths(DataContractTransferRequest, body).sort(), [
    "source.credentials.password_key",
    "source.credentials.username_key",
  ]);
});

Deno.test("DataContractTransferRequest rejects bad project names, start times and hosts", async (t) => {
  const cases: [label: string, overrides: Json, path: string][] = [
    ["project_name '..'", { project_name: ".." }, "project_name"],
    ["project_name with '/'", { project_name: "a/b" }, "project_name"],
    ["project_name with a trailing space", { project_name: "a b " }, "project_name"],
    ["project_name in NFD", { project_name: "Cafe\u0301" }, "project_name"],
    ["project_name with an unpaired surrogate", { project_name: "a\ud800" }, "project_name"],
    ["project_name with U+FFFD", { project_name: "a\ufffd" }, "project_name"],
    ["project_name missing", { project_name: undefined }, "project_name"],
    ["project_name not a string", { project_name: 42 }, "project_name"],
    ["project_start_time '2025'", { project_start_time: "2025" }, "project_start_time"],
    ["project_start_time missing", { project_start_time: undefined }, "project_start_time"],
    [
      "SQL host with scheme",
      { source: sqlSource("mysql", { host_url: "https://db" }) },
      "source.host_url",
    ],
    [
      "SQL host with port",
      { source: sqlSource("mysql", { host_url: "db:3306" }) },
      "source.host_url",
    ],
    [
      "SQL host with userinfo",
      { source: sqlSource("mysql", { host_url: "a@b" }) },
      "source.host_url",
    ],
    [
      "Databricks host without scheme",
      { source: databricksSource({ host_url: "adb.net" }) },
      "source.host_url",
    ],
    [
      "Databricks host ftp",
      { source: databricksSource({ host_url: "ftp://adb.net" }) },
      "source.host_url",
    ],
    [
      "Databricks http_path relative",
      { source: databricksSource({ http_path: "sql/1.0" }) },
      "source.http_path",
    ],
    ["missing source", { source: undefined }, "source"],
    ["missing dataset", { dataset: undefined }, "dataset"],
    ["missing schema_name", { dataset: { name: "x" } }, "dataset.schema_name"],
  ];
  for (const [label, overrides, path] of cases) {
    await t.step(label, () => {
      const body = { ...databricksExample(), ...overrides };
      for (const [key, value] of Object.entries(overrides)) {
        if (value === undefined) delete body[key];
      }
      assertRejectedAt(DataContractTransferRequest, body, path);
    });
  }
});

Deno.test("DataContractTransferRequest accepts the CLI template's project name with spaces", () => {
  const parsed = DataContractTransferRequest.parse({
    ...databricksExample(),
    project_name: "CR8TOR Demo Project",
  });
  assert.equal(parsed.project_name, "CR8TOR Demo Project");
});

Deno.test("DataContractTransferRequest applies the Unicode name rules to every name it carries", async (t) => {
  const example = databricksExample();
  const dataset = example.dataset as Json;
  const table = (dataset.tables as Json[])[0]!;
  const source = example.source as Json;
  const fields: [path: string, override: (bad: string) => Json][] = [
    ["project_name", (bad) => ({ project_name: bad })],
    ["dataset.name", (bad) => ({ dataset: { ...dataset, name: bad } })],
    ["dataset.schema_name", (bad) => ({ dataset: { ...dataset, schema_name: bad } })],
    [
      "dataset.tables.0.name",
      (bad) => ({ dataset: { ...dataset, tables: [{ ...table, name: bad }] } }),
    ],
    [
      "dataset.tables.0.columns.0.name",
      (bad) => ({ dataset: { ...dataset, tables: [{ ...table, columns: [{ name: bad }] }] } }),
    ],
    ["destination.name", (bad) => ({ destination: { ...example.destination as Json, name: bad } })],
    ["source.catalog", (bad) => ({ source: { ...source, catalog: bad } })],
    [
      "source.credentials.spn_secret",
      (bad) => ({
        source: { ...source, credentials: { ...source.credentials as Json, spn_secret: bad } },
      }),
    ],
  ];
  const hostile: [label: string, suffix: string][] = [
    ["an unpaired surrogate", "\ud800"],
    ["U+FFFD", "\ufffd"],
    ["a decomposed accent (NFD)", "e\u0301"],
  ];
  for (const [path, withValue] of fields) {
    for (const [label, suffix] of hostile) {
      await t.step(`${path} with ${label}`, () => {
        assertRejectedAt(
          DataContractTransferRequest,
          { ...example, ...withValue(`name${suffix}`) },
          path,
        );
      });
    }
  }
  await t.step("dataset.name in NFC with spaces is fine", () => {
    const parsed = DataContractTransferRequest.parse({
      ...example,
      dataset: { ...dataset, name: "Caf\u00e9 extract (v2)" },
    });
    assert.equal(parsed.dataset.name, "Caf\u00e9 extract (v2)");
  });
});

Deno.test("DataContractTransferRequest reports every offending field in one parse", () => {
  const body = {
    "project_name": "../x",
    "project_start_time": "2025",
    destination: { name: "LSC", type: "filestore", format: "CSV" },
    "extract_config": { backend_engine: 42 },
    source: {
      type: "postgresql",
      host_url: "https://db.internal",
      port: "abc",
      database: "research;",
      credentials: { username_key: "../u", password_key: "/etc/passwd" },
    },
    dataset: {
      schema_name: "onc'ology",
      tables: [
        { name: "t t" },
        { name: "dup", columns: [{ name: "c\u0430" }, { name: "x" }, { name: "x" }] },
        { name: "dup" },
      ],
    },
  };
  assert.deepEqual(
    new Set(issuePaths(DataContractTransferRequest, body)),
    new Set([
      "project_name",
      "project_start_time",
      "destination.format",
      "extract_config.backend_engine",
      "source.host_url",
      "source.port",
      "source.database",
      "source.credentials.username_key",
      "source.credentials.password_key",
      "dataset.schema_name",
      "dataset.tables.0.name",
      "dataset.tables.1.columns.0.name",
      "dataset.tables.1.columns",
      "dataset.tables",
    ]),
  );
});

// ---------------------------------------------------------------------------------------------------------
// Payloads (§2)

Deno.test("StageTransferPayload accepts the contract's package payloads (§2.3.2)", async (t) => {
  const payloads = [
    { data_retrieved: [{ file_path: "data/outputs/database.duckdb" }] },
    {
      data_retrieved: [
        { file_path: "data/outputs/oncology/tumour_stage.csv" },
        { file_path: "data/outputs/oncology/treatment_line.csv" },
      ],
    },
    { data_retrieved: [{ table_name: "pr042_20250611_093000_oncology.tumour_stage" }] },
    { data_retrieved: [] },
  ];
  for (const payload of payloads) {
    await t.step(JSON.stringify(payload), () => {
      assert.deepEqual(parseOk(StageTransferPayload, payload), payload);
    });
  }
});

Deno.test("StageTransferPayload rejects items that are neither a file nor a table", () => {
  assertRejectedAt(StageTransferPayload, { data_retrieved: [{ path: "x" }] }, "data_retrieved.0");
});

Deno.test("PublishPayload accepts the contract's publish payloads (§2.3.3)", async (t) => {
  const payloads = [
    {
      data_published: [{
        file_path: "data/outputs/database.duckdb",
        hash_value: "ab".repeat(64),
        total_bytes: 2887680,
      }],
    },
    {
      data_published: [{
        postgresql_table_name: "pr042_20250611_093000_oncology.tumour_stage",
        opal_resource_name: "tre_postgresql_pr042_20250611_093000_oncology_tumour_stage",
        opal_project_name: "Pr042",
        opal_group_name: "Pr042_group",
      }],
    },
  ];
  for (const payload of payloads) {
    await t.step(Object.keys(payload.data_published[0] ?? {}).join(","), () => {
      assert.deepEqual(parseOk(PublishPayload, payload), payload);
    });
  }
});

Deno.test("PublishPayload rejects a fractional total_bytes", () => {
  const payload = {
    "data_published": [{ file_path: "f", hash_value: "h", total_bytes: 1.5 }],
  };
  assertRejectedAt(PublishPayload, payload, "data_published.0");
});

Deno.test("DatasetMetadataPayload accepts the §1.1 reply with this project's added keys", () => {
  // The reference's reply (§1.1) plus `nullable` per column and `primary_key` per table, which this
  // implementation always sends; `name` is the dataset's name instead of "default_name".
  const payload = {
    name: "oncology_extract",
    "schema_name": "oncology",
    description: "Curated oncology tables",
    tables: [{
      name: "tumour_stage",
      columns: [
        { name: "stage_id", datatype: "LONG", description: "surrogate key", nullable: false },
        { name: "stage_label", datatype: "STRING", description: "", nullable: true },
      ],
      description: "TNM stage lookup",
      primary_key: ["stage_id"],
    }],
    "staging_path": null,
    "publish_path": { published: "20250612" },
  };
  assert.deepEqual(parseOk(DatasetMetadataPayload, payload), payload);
});

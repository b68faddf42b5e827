import assert from "node:assert/strict";
import {
  capDescription,
  type CatalogColumn,
  type CatalogTable,
  MAX_DESCRIPTION_CHARS,
  metadataPayload,
  type SchemaCatalog,
  selectDataset,
  TRUNCATION_MARKER,
} from "./catalog.ts";
import { type DatasetMetadata, DatasetMetadataPayload } from "./contract.ts";
import { AppError, DatasetItemsNotFoundError } from "./errors.ts";

function column(name: string, dataType = "integer"): CatalogColumn {
  return { name, dataType, logicalType: { kind: "integer" }, nullable: true, description: null };
}

function table(
  name: string,
  columns: string[],
  overrides: Partial<CatalogTable> = {},
): CatalogTable {
  return {
    name,
    kind: "table",
    description: null,
    columns: columns.map((c) => column(c)),
    primaryKey: [],
    ...overrides,
  };
}

/** Tables sorted by name, columns in ordinal order, as a `SourceDatabase` returns them. */
const CATALOG: SchemaCatalog = {
  name: "oncology",
  description: "Curated oncology tables",
  tables: [
    table("Patient", ["id", "Name"]),
    table("diagnosis", ["diagnosis_id", "patient_id", "icd10", "diagnosed_on"]),
    table("treatment_line", ["line_no", "regimen"], { kind: "view" }),
    table("tumour_stage", ["stage_id", "stage_label", "secret_note"], {
      description: "TNM stage lookup",
      primaryKey: ["stage_id"],
    }),
  ],
};

type Requested = Record<string, string[] | null | undefined>;

/** A dataset asking for `tables` (name → column names, `null`/`undefined` for all columns). */
function dataset(tables: Requested | null | undefined, extra: Partial<DatasetMetadata> = {}) {
  const result: DatasetMetadata = { "schema_name": "oncology", ...extra };
  if (tables === null) result.tables = null;
  if (tables !== null && tables !== undefined) {
    result.tables = Object.entries(tables).map(([name, columns]) => {
      if (columns === undefined) return { name };
      return { name, columns: columns === null ? null : columns.map((c) => ({ name: c })) };
    });
  }
  return result;
}

function shape(catalog: SchemaCatalog): [string, string[]][] {
  return catalog.tables.map((t) => [t.name, t.columns.map((c) => c.name)]);
}

function missingOf(fn: () => unknown): DatasetItemsNotFoundError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof DatasetItemsNotFoundError, `unexpected error ${String(error)}`);
    return error;
  }
  assert.fail("expected DatasetItemsNotFoundError");
}

Deno.test("selectDataset() returns the whole catalogue when no tables are listed", async (t) => {
  const cases: [label: string, tables: Requested | null | undefined][] = [
    ["tables omitted", undefined],
    ["tables null", null],
    ["tables []", {}],
  ];
  for (const [label, tables] of cases) {
    await t.step(label, () => {
      assert.deepEqual(selectDataset(CATALOG, dataset(tables)), CATALOG);
    });
  }
});

Deno.test("selectDataset() keeps listed tables only, in catalogue order", async (t) => {
  const cases: [label: string, tables: Requested, expected: string[]][] = [
    ["one table", { tumour_stage: null }, ["tumour_stage"]],
    ["request order reversed", { tumour_stage: null, diagnosis: null }, [
      "diagnosis",
      "tumour_stage",
    ]],
    ["a view", { treatment_line: null }, ["treatment_line"]],
    ["every table", {
      tumour_stage: null,
      treatment_line: null,
      diagnosis: null,
      Patient: null,
    }, ["Patient", "diagnosis", "treatment_line", "tumour_stage"]],
  ];
  for (const [label, tables, expected] of cases) {
    await t.step(label, () => {
      const selected = selectDataset(CATALOG, dataset(tables));
      assert.deepEqual(selected.tables.map((t) => t.name), expected);
      assert.equal(selected.name, CATALOG.name);
      assert.equal(selected.description, CATALOG.description);
    });
  }
});

Deno.test("selectDataset() keeps every column when a table's columns are null, [] or omitted", async (t) => {
  for (const columns of [null, [], undefined]) {
    await t.step(String(JSON.stringify(columns)), () => {
      const selected = selectDataset(CATALOG, dataset({ tumour_stage: columns }));
      assert.deepEqual(selected.tables, [CATALOG.tables[3]]);
    });
  }
});

Deno.test("selectDataset() keeps listed columns only, in ordinal order", async (t) => {
  const cases: [label: string, tables: Requested, expected: [string, string[]][]][] = [
    ["one column", { tumour_stage: ["stage_label"] }, [["tumour_stage", ["stage_label"]]]],
    ["request order reversed", { tumour_stage: ["stage_label", "stage_id"] }, [[
      "tumour_stage",
      ["stage_id", "stage_label"],
    ]]],
    ["mixed tables", { tumour_stage: ["stage_id"], diagnosis: null }, [
      ["diagnosis", ["diagnosis_id", "patient_id", "icd10", "diagnosed_on"]],
      ["tumour_stage", ["stage_id"]],
    ]],
    ["scattered columns", { diagnosis: ["diagnosed_on", "diagnosis_id"] }, [[
      "diagnosis",
      ["diagnosis_id", "diagnosed_on"],
    ]]],
  ];
  for (const [label, tables, expected] of cases) {
    await t.step(label, () => {
      assert.deepEqual(shape(selectDataset(CATALOG, dataset(tables))), expected);
    });
  }
});

Deno.test("selectDataset() keeps a narrowed table's other properties", () => {
  const [selected] = selectDataset(CATALOG, dataset({ tumour_stage: ["stage_label"] })).tables;
  assert.deepEqual(selected, { ...CATALOG.tables[3], columns: [CATALOG.tables[3]?.columns[1]] });
});

Deno.test("selectDataset() does not modify the catalogue", () => {
  const before = structuredClone(CATALOG);
  selectDataset(CATALOG, dataset({ tumour_stage: ["stage_id"] }));
  assert.deepEqual(CATALOG, before);
});

Deno.test("selectDataset() reports every missing table and column together", async (t) => {
  const cases: [
    label: string,
    tables: Requested,
    missing: { tables: string[]; columns: string[] },
    message: string,
  ][] = [
    [
      "one missing table",
      { nope: null },
      { tables: ["nope"], columns: [] },
      'Cannot find in schema "oncology": tables "nope"',
    ],
    [
      "one missing column",
      { tumour_stage: ["stage_id", "ghost"] },
      { tables: [], columns: ["tumour_stage.ghost"] },
      'Cannot find in schema "oncology": columns "tumour_stage.ghost"',
    ],
    [
      "tables and columns",
      {
        nope: ["a"],
        tumour_stage: ["ghost", "stage_id", "phantom"],
        missing_too: null,
        diagnosis: ["wrong"],
      },
      {
        tables: ["nope", "missing_too"],
        columns: ["tumour_stage.ghost", "tumour_stage.phantom", "diagnosis.wrong"],
      },
      'Cannot find in schema "oncology": tables "nope", "missing_too"; ' +
      'columns "tumour_stage.ghost", "tumour_stage.phantom", "diagnosis.wrong"',
    ],
  ];
  for (const [label, tables, missing, message] of cases) {
    await t.step(label, () => {
      const error = missingOf(() => selectDataset(CATALOG, dataset(tables)));
      assert.deepEqual(error.missing, missing);
      assert.equal(error.message, message);
      assert.equal(error.schema, "oncology");
      assert.equal(error.code, "dataset_items_not_found");
      assert.equal(error.name, "DatasetItemsNotFoundError");
      assert.ok(error instanceof AppError);
    });
  }
});

Deno.test("selectDataset() matches table and column names case-sensitively", async (t) => {
  const cases: [
    label: string,
    tables: Requested,
    missing: { tables: string[]; columns: string[] },
  ][] = [
    ["lower-case table", { patient: null }, { tables: ["patient"], columns: [] }],
    ["upper-case table", { TUMOUR_STAGE: null }, { tables: ["TUMOUR_STAGE"], columns: [] }],
    ["lower-case column", { Patient: ["name"] }, { tables: [], columns: ["Patient.name"] }],
    ["upper-case column", { tumour_stage: ["Stage_Id"] }, {
      tables: [],
      columns: ["tumour_stage.Stage_Id"],
    }],
  ];
  for (const [label, tables, missing] of cases) {
    await t.step(label, () => {
      const error = missingOf(() => selectDataset(CATALOG, dataset(tables)));
      assert.deepEqual(error.missing, missing);
    });
  }
  await t.step("exact case matches", () => {
    assert.deepEqual(shape(selectDataset(CATALOG, dataset({ Patient: ["Name"] }))), [[
      "Patient",
      ["Name"],
    ]]);
  });
});

Deno.test("metadataPayload() has exactly the reference's keys, plus nullable and primary_key", () => {
  const payload = metadataPayload(CATALOG, dataset(undefined, { name: "extract" }));
  assert.deepEqual(Object.keys(payload), [
    "name",
    "schema_name",
    "description",
    "tables",
    "staging_path",
    "publish_path",
  ]);
  for (const t of payload.tables) {
    assert.deepEqual(Object.keys(t), ["name", "columns", "description", "primary_key"]);
    for (const c of t.columns) {
      assert.deepEqual(Object.keys(c), ["name", "datatype", "description", "nullable"]);
    }
  }
  assert.deepEqual(DatasetMetadataPayload.parse(payload), payload);
});

Deno.test("metadataPayload() maps catalogue fields to payload fields", () => {
  const catalog: SchemaCatalog = {
    name: "oncology",
    description: null,
    tables: [{
      name: "tumour_stage",
      kind: "table",
      description: "TNM stage lookup",
      primaryKey: ["stage_id", "stage_label"],
      columns: [
        {
          name: "stage_id",
          dataType: "bigint",
          logicalType: { kind: "bigint" },
          nullable: false,
          description: "surrogate key",
        },
        {
          name: "stage_label",
          dataType: "numeric(10,2)",
          logicalType: { kind: "decimal", precision: 10, scale: 2 },
          nullable: true,
          description: null,
        },
      ],
    }],
  };
  assert.deepEqual(metadataPayload(catalog, dataset(undefined, { name: "extract" })), {
    name: "extract",
    schema_name: "oncology",
    description: null,
    tables: [{
      name: "tumour_stage",
      columns: [
        { name: "stage_id", datatype: "bigint", description: "surrogate key", nullable: false },
        { name: "stage_label", datatype: "numeric(10,2)", description: null, nullable: true },
      ],
      description: "TNM stage lookup",
      primary_key: ["stage_id", "stage_label"],
    }],
    staging_path: null,
    publish_path: null,
  });
});

Deno.test("metadataPayload() falls back to the schema name when the dataset has no name", async (t) => {
  const cases: [label: string, extra: Partial<DatasetMetadata>, expected: string][] = [
    ["name omitted", {}, "oncology"],
    ["name null", { name: null }, "oncology"],
    ["name given", { name: "oncology_extract" }, "oncology_extract"],
  ];
  for (const [label, extra, expected] of cases) {
    await t.step(label, () => {
      assert.equal(metadataPayload(CATALOG, dataset(undefined, extra)).name, expected);
    });
  }
});

Deno.test("metadataPayload() round-trips staging_path and publish_path", async (t) => {
  const staging = { staging: { "tumour_stage.csv": "sha512:ab", nested: [1, { a: null }] } };
  const publish = { "published_at": "20250612_101500", files: ["a", "b"] };
  const cases: [label: string, extra: Partial<DatasetMetadata>, expected: [unknown, unknown]][] = [
    ["omitted", {}, [null, null]],
    ["null", { staging_path: null, publish_path: null }, [null, null]],
    ["objects", { staging_path: staging, publish_path: publish }, [staging, publish]],
    ["empty objects", { staging_path: {}, publish_path: {} }, [{}, {}]],
  ];
  for (const [label, extra, [stagingPath, publishPath]] of cases) {
    await t.step(label, () => {
      const payload = metadataPayload(CATALOG, dataset(undefined, extra));
      assert.deepEqual(payload.staging_path, stagingPath);
      assert.deepEqual(payload.publish_path, publishPath);
    });
  }
});

Deno.test("metadataPayload() describes what selectDataset() kept", () => {
  const selected = selectDataset(CATALOG, dataset({ tumour_stage: ["stage_label", "stage_id"] }));
  const payload = metadataPayload(selected, dataset({ tumour_stage: ["stage_label", "stage_id"] }));
  assert.deepEqual(payload.tables.map((t) => [t.name, t.columns.map((c) => c.name)]), [
    ["tumour_stage", ["stage_id", "stage_label"]],
  ]);
  assert.deepEqual(payload.tables[0]?.primary_key, ["stage_id"]);
});

Deno.test("metadataPayload() copies primary_key instead of sharing the catalogue's array", () => {
  const payload = metadataPayload(CATALOG, dataset(undefined));
  const key = payload.tables.find((t) => t.name === "tumour_stage")?.primary_key;
  assert.ok(key !== undefined);
  key.push("mutated");
  assert.deepEqual(CATALOG.tables[3]?.primaryKey, ["stage_id"]);
});

Deno.test("capDescription() keeps descriptions up to the cap and cuts longer ones with a marker", async (t) => {
  const at = "d".repeat(MAX_DESCRIPTION_CHARS);
  const cases: [string, string | null, string | null][] = [
    ["null", null, null],
    ["empty", "", ""],
    ["short", "One row per patient", "One row per patient"],
    ["exactly the cap", at, at],
    [
      "one over the cap",
      at + "e",
      "d".repeat(MAX_DESCRIPTION_CHARS - TRUNCATION_MARKER.length) + TRUNCATION_MARKER,
    ],
  ];
  for (const [label, input, expected] of cases) {
    await t.step(label, () => assert.equal(capDescription(input), expected));
  }
  await t.step("1 MB", () => {
    const capped = capDescription("x".repeat(1024 * 1024))!;
    assert.equal(capped.length, MAX_DESCRIPTION_CHARS);
    assert.ok(capped.endsWith(TRUNCATION_MARKER));
  });
  await t.step("never between the halves of a surrogate pair", () => {
    const keep = MAX_DESCRIPTION_CHARS - TRUNCATION_MARKER.length;
    const capped = capDescription("a".repeat(keep - 1) + "😀" + "b".repeat(100))!;
    assert.equal(capped, "a".repeat(keep - 1) + TRUNCATION_MARKER);
    assert.ok(capped.isWellFormed());
  });
});

Deno.test("selectDataset() caps the schema, table and column descriptions", async (t) => {
  const long = "y".repeat(MAX_DESCRIPTION_CHARS + 1);
  const catalog: SchemaCatalog = {
    name: "s",
    description: long,
    tables: [{
      ...table("t", []),
      description: long,
      columns: [{ ...column("c"), description: long }, column("d")],
    }],
  };
  const requests: [string, Requested | null][] = [
    ["every table", null],
    ["table t", { t: null }],
    ["column t.c", { t: ["c"] }],
  ];
  for (const [label, tables] of requests) {
    await t.step(label, () => {
      const request = dataset(tables, { schema_name: "s" });
      const payload = metadataPayload(selectDataset(catalog, request), request);
      const descriptions = [
        payload.description,
        ...payload.tables.flatMap((t) => [t.description, ...t.columns.map((c) => c.description)]),
      ].filter((d) => d !== null);
      assert.ok(descriptions.length >= 3);
      for (const d of descriptions) {
        assert.equal(d.length, MAX_DESCRIPTION_CHARS);
        assert.ok(d.endsWith(TRUNCATION_MARKER));
      }
    });
  }
});

/**
 * The contract every {@link SourceDatabase} adapter passes, the in-memory fake included.
 *
 * Each adapter's test builds the standard fixture below in its own dialect, in a fresh schema, and hands
 * the suite a {@link SourceDatabaseSubject}. The fixture (types given in PostgreSQL terms; use the
 * dialect's nearest equivalent):
 *
 * - schema comment "Synthetic source for contract tests", where the source supports schema comments;
 * - `patients`, comment "One row per patient":
 *   `id integer` primary key; `nhs_number varchar(10) not null`, comment "NHS number";
 *   `birth_date date` nullable; `weight numeric(6,2)` nullable;
 * - `visits`, no comment, primary key `(patient_id, visit_no)` — declared in the opposite order to the
 *   columns, so key order and column order differ:
 *   `visit_no integer not null`; `patient_id integer not null`; `visited_on date not null`;
 *   `notes text` nullable, comment "Free text";
 * - `audit_log`, no primary key and no comments: `event varchar(100) not null`; `logged_at timestamp`;
 * - the view `patient_names` as `select id, nhs_number from patients`.
 *
 * Use it from an adapter test:
 * ```ts
 * Deno.test({ name: "PostgresSourceDatabase passes the SourceDatabase contract", ignore: ignorePostgres,
 *   fn: (t) => sourceDatabaseContract(t, { name: "PostgresSourceDatabase", setUp: createFixture }) });
 * ```
 *
 * @module
 */
import assert from "node:assert/strict";
import type { CatalogTable, SchemaCatalog } from "../../domain/catalog.ts";
import {
  SchemaNotFoundError,
  type SourceDatabase,
  SourceUnavailableError,
} from "../../ports/source_database.ts";

/** The standard fixture, built by one adapter's test in a schema of its own. */
export interface SourceDatabaseFixture {
  /** The schema (for MySQL, the database) holding the standard fixture. */
  readonly schema: string;
  /** Opens a new connection that can see the fixture; the suite closes it. */
  connect(): Promise<SourceDatabase>;
  /** Drops everything the fixture created; called once, even when a step fails. */
  cleanup(): Promise<void>;
}

/** What an adapter hands the suite. */
export interface SourceDatabaseSubject {
  /** The adapter's class name, used as the prefix of every step name. */
  readonly name: string;
  /** Builds the standard fixture. */
  setUp(): Promise<SourceDatabaseFixture>;
  /** Whether the source keeps schema comments (PostgreSQL does; MySQL does not). Defaults to true. */
  readonly schemaComments?: boolean;
}

/** The fixture's tables and views, in the order `describeSchema` must list them. */
export const FIXTURE_TABLES = ["audit_log", "patient_names", "patients", "visits"] as const;

/** The fixture's schema comment. */
export const FIXTURE_SCHEMA_COMMENT = "Synthetic source for contract tests";

/**
 * Runs every contract step against one adapter: builds the fixture, runs the steps, then cleans up.
 *
 * @param t the test context the steps are registered on.
 * @param subject the adapter under test and how to build its fixture.
 */
export async function sourceDatabaseContract(
  t: Deno.TestContext,
  subject: SourceDatabaseSubject,
): Promise<void> {
  const fixture = await subject.setUp();
  try {
    const db = await fixture.connect();
    try {
      await runSteps(t, subject, fixture, db);
    } finally {
      await db.close();
    }
    await runLifecycleSteps(t, subject, fixture);
  } finally {
    await fixture.cleanup();
  }
}

async function runSteps(
  t: Deno.TestContext,
  subject: SourceDatabaseSubject,
  fixture: SourceDatabaseFixture,
  db: SourceDatabase,
): Promise<void> {
  const { name } = subject;
  const { schema } = fixture;
  let whole: SchemaCatalog | undefined;
  async function catalog(): Promise<SchemaCatalog> {
    whole ??= await db.describeSchema(schema);
    return whole;
  }
  async function table(tableName: string): Promise<CatalogTable> {
    const found = (await catalog()).tables.find((t) => t.name === tableName);
    assert.ok(found, `table "${tableName}" is missing`);
    return found;
  }

  await t.step(`${name} ping() succeeds on an open connection`, async () => {
    await db.ping();
  });

  await t.step(`${name} describeSchema() names the schema and its description`, async () => {
    const c = await catalog();
    assert.equal(c.name, schema);
    assert.equal(c.description, subject.schemaComments === false ? null : FIXTURE_SCHEMA_COMMENT);
  });

  await t.step(`${name} describeSchema() lists tables and views sorted by name`, async () => {
    assert.deepEqual((await catalog()).tables.map((t) => t.name), [...FIXTURE_TABLES]);
  });

  await t.step(`${name} describeSchema() lists views`, async () => {
    const kinds = Object.fromEntries((await catalog()).tables.map((t) => [t.name, t.kind]));
    assert.deepEqual(kinds, {
      audit_log: "table",
      patient_names: "view",
      patients: "table",
      visits: "table",
    });
    assert.deepEqual(
      (await table("patient_names")).columns.map((c) => c.name),
      ["id", "nhs_number"],
    );
  });

  await t.step(`${name} describeSchema() lists columns in ordinal order`, async () => {
    assert.deepEqual(
      (await table("patients")).columns.map((c) => c.name),
      ["id", "nhs_number", "birth_date", "weight"],
    );
    assert.deepEqual(
      (await table("visits")).columns.map((c) => c.name),
      ["visit_no", "patient_id", "visited_on", "notes"],
    );
    assert.deepEqual(
      (await table("audit_log")).columns.map((c) => c.name),
      ["event", "logged_at"],
    );
  });

  await t.step(`${name} describeSchema() reports nullability`, async () => {
    const nullable = (t: CatalogTable) =>
      Object.fromEntries(t.columns.map((c) => [c.name, c.nullable]));
    assert.deepEqual(nullable(await table("patients")), {
      id: false,
      nhs_number: false,
      birth_date: true,
      weight: true,
    });
    assert.deepEqual(nullable(await table("visits")), {
      visit_no: false,
      patient_id: false,
      visited_on: false,
      notes: true,
    });
    assert.deepEqual(nullable(await table("audit_log")), { event: false, logged_at: true });
  });

  await t.step(`${name} describeSchema() reports comments, null when absent`, async () => {
    const patients = await table("patients");
    assert.equal(patients.description, "One row per patient");
    assert.deepEqual(
      patients.columns.map((c) => c.description),
      [null, "NHS number", null, null],
    );
    const visits = await table("visits");
    assert.equal(visits.description, null);
    assert.deepEqual(visits.columns.map((c) => c.description), [null, null, null, "Free text"]);
    const audit = await table("audit_log");
    assert.equal(audit.description, null);
    assert.deepEqual(audit.columns.map((c) => c.description), [null, null]);
    assert.equal((await table("patient_names")).description, null);
  });

  await t.step(`${name} describeSchema() reports primary keys in key order`, async () => {
    assert.deepEqual((await table("patients")).primaryKey, ["id"]);
    assert.deepEqual((await table("visits")).primaryKey, ["patient_id", "visit_no"]);
    assert.deepEqual((await table("audit_log")).primaryKey, []);
    assert.deepEqual((await table("patient_names")).primaryKey, []);
  });

  await t.step(`${name} describeSchema() keeps length, precision and scale in types`, async () => {
    const types = Object.fromEntries(
      (await table("patients")).columns.map((c) => [c.name, c.dataType]),
    );
    assert.match(types.nhs_number ?? "", /char.*\b10\b/i);
    assert.match(types.weight ?? "", /(numeric|decimal).*\b6\s*,\s*2\b/i);
    assert.match(types.id ?? "", /int/i);
    assert.match(types.birth_date ?? "", /date/i);
    for (const t of (await catalog()).tables) {
      for (const c of t.columns) {
        assert.ok(c.dataType.trim() !== "", `${t.name}.${c.name} has an empty type`);
      }
    }
  });

  await t.step(`${name} describeSchema() restricts to the tables option`, async () => {
    const c = await db.describeSchema(schema, { tables: ["visits", "patient_names", "no_such"] });
    assert.equal(c.name, schema);
    assert.deepEqual(c.tables.map((t) => t.name), ["patient_names", "visits"]);
    assert.deepEqual(
      c.tables,
      (await catalog()).tables.filter((t) => t.name !== "audit_log" && t.name !== "patients"),
    );
  });

  await t.step(`${name} describeSchema() matches table names exactly`, async () => {
    const c = await db.describeSchema(schema, { tables: ["PATIENTS", "Visits", "patients "] });
    assert.deepEqual(c.tables, []);
  });

  await t.step(`${name} describeSchema() rejects an unknown schema`, async () => {
    const missing = `${schema}_missing`;
    const error = await db.describeSchema(missing).then(
      () => assert.fail("expected a SchemaNotFoundError"),
      (e: unknown) => e,
    );
    assert.ok(error instanceof SchemaNotFoundError, `got ${String(error)}`);
    assert.equal(error.schema, missing);
  });

  await t.step(`${name} describeSchema() matches the schema name exactly`, async () => {
    await assert.rejects(db.describeSchema(schema.toUpperCase()), SchemaNotFoundError);
  });

  await t.step(`${name} describeSchema() treats quotes in a schema name as data`, async () => {
    for (
      const odd of [`${schema}'`, `x' or '1'='1`, `${schema}"; drop table x; --`, "a`b", "a\\b"]
    ) {
      await assert.rejects(db.describeSchema(odd), SchemaNotFoundError, odd);
    }
  });
}

async function runLifecycleSteps(
  t: Deno.TestContext,
  subject: SourceDatabaseSubject,
  fixture: SourceDatabaseFixture,
): Promise<void> {
  const { name } = subject;

  await t.step(`${name} close() is safe to call twice`, async () => {
    const db = await fixture.connect();
    await db.ping();
    await db.close();
    await db.close();
    await assert.rejects(async () => await db.ping(), SourceUnavailableError);
    await assert.rejects(
      async () => await db.describeSchema(fixture.schema),
      SourceUnavailableError,
    );
  });

  await t.step(`${name} reports failures as rejections, never as synchronous throws`, async () => {
    const db = await fixture.connect();
    await db.close();
    for (
      const [call, run] of [
        ["ping()", () => db.ping()],
        ["describeSchema()", () => db.describeSchema(fixture.schema)],
      ] as const
    ) {
      let promise: Promise<unknown>;
      try {
        promise = run();
      } catch (e) {
        assert.fail(`${call} threw synchronously instead of returning a rejected promise: ${e}`);
      }
      await assert.rejects(promise, SourceUnavailableError);
    }
  });

  await t.step(`${name} await using closes the connection`, async () => {
    let escaped: SourceDatabase | undefined;
    {
      await using db = await fixture.connect();
      escaped = db;
      await db.ping();
    }
    const closed = escaped;
    await assert.rejects(async () => await closed.ping(), SourceUnavailableError);
  });
}

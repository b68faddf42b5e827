import assert from "node:assert/strict";
import {
  checkDestinationIdentifier,
  DestinationNameReservedError,
  DestinationNameTooLongError,
  destinationSchemaName,
  POSTGRES_IDENTIFIER_MAX_BYTES,
} from "./destination_schema.ts";

Deno.test("destinationSchemaName() lower-cases project, start time and schema joined by _", async (t) => {
  const cases: [project: string, start: string, schema: string, expected: string][] = [
    ["Pr042", "20250611_093000", "Oncology", "pr042_20250611_093000_oncology"],
    ["my-proj", "20250611_093000", "s", "my-proj_20250611_093000_s"],
    ["ÄBC", "20250611_093000", "Dataset$1", "äbc_20250611_093000_dataset$1"],
  ];
  for (const [project, start, schema, expected] of cases) {
    await t.step(`${project} ${schema}`, () => {
      assert.equal(destinationSchemaName(project, start, schema), expected);
    });
  }
});

Deno.test("destinationSchemaName() accepts exactly 63 bytes and refuses 64", () => {
  const start = "20250611_093000";
  const fixed = `_${start}_`.length;
  const fits = "p".repeat(POSTGRES_IDENTIFIER_MAX_BYTES - fixed - 1);
  assert.equal(destinationSchemaName(fits, start, "s").length, 63);
  assert.throws(
    () => destinationSchemaName(`${fits}p`, start, "s"),
    (e: unknown) => e instanceof DestinationNameTooLongError && e.bytes === 64,
  );
});

Deno.test("destinationSchemaName() counts UTF-8 bytes, not characters", () => {
  // 25 two-byte characters: 50 bytes, so with "_20250611_093000_s" (18) the name is 68 bytes, 43 chars.
  const project = "é".repeat(25);
  try {
    destinationSchemaName(project, "20250611_093000", "s");
    assert.fail("expected DestinationNameTooLongError");
  } catch (e) {
    assert.ok(e instanceof DestinationNameTooLongError);
    assert.equal(e.code, "destination_name_too_long");
    assert.equal(e.bytes, 68);
    assert.equal(e.kind, "schema");
    assert.match(e.message, /68 bytes long and PostgreSQL keeps at most 63; shorten/);
  }
});

Deno.test("destinationSchemaName() refuses names PostgreSQL reserves", () => {
  assert.throws(
    () => destinationSchemaName("PG_x", "20250611_093000", "s"),
    (e: unknown) =>
      e instanceof DestinationNameReservedError && e.code === "destination_name_reserved" &&
      e.identifier === "pg_x_20250611_093000_s",
  );
});

Deno.test("checkDestinationIdentifier() names what is too long", () => {
  checkDestinationIdentifier("column", "c".repeat(63));
  assert.throws(
    () => checkDestinationIdentifier("column", "c".repeat(64)),
    (e: unknown) =>
      e instanceof DestinationNameTooLongError && e.kind === "column" &&
      /^Cannot create destination column "c{64}": it is 64 bytes long and PostgreSQL keeps at most 63$/
        .test(e.message),
  );
});

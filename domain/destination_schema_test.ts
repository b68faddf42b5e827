import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  checkDestinationIdentifier,
  DestinationNameReservedError,
  DestinationNameTooLongError,
  destinationSchemaName,
  POSTGRES_IDENTIFIER_MAX_BYTES,
} from "./destination_schema.ts";

/** 8 hex digits of the SHA-256 of `text`, as `projectIdentifier` documents. */
function sha8(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex").slice(0, 8);
}

Deno.test("destinationSchemaName() joins the project identifier, start time and schema, lower-cased", async (t) => {
  const cases: [project: string, start: string, schema: string, expected: string][] = [
    ["pr042", "20250611_093000", "Oncology", "pr042_20250611_093000_oncology"],
    ["Pr042", "20250611_093000", "Oncology", `pr042_${sha8("Pr042")}_20250611_093000_oncology`],
    ["my-proj", "20250611_093000", "s", `my_proj_${sha8("my-proj")}_20250611_093000_s`],
    ["ÄBC", "20250611_093000", "Dataset$1", `bc_${sha8("ÄBC")}_20250611_093000_dataset$1`],
    [
      "CR8TOR Demo Project",
      "20250611_093000",
      "public",
      `cr8tor_demo_project_${sha8("CR8TOR Demo Project")}_20250611_093000_public`,
    ],
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
  // A 25-character schema of two-byte characters: 50 bytes, so with "p_20250611_093000_" (18) the name
  // is 68 bytes, 43 characters.
  try {
    destinationSchemaName("p", "20250611_093000", "é".repeat(25));
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
    () => destinationSchemaName("pg_x", "20250611_093000", "s"),
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

import assert from "node:assert/strict";
import { UnsafeTableNameError } from "./errors.ts";
import { csvPayloadPath } from "./staging_layout.ts";

Deno.test("csvPayloadPath() puts a table's file under its schema", () => {
  assert.equal(csvPayloadPath("oncology", "t--x$1"), "data/outputs/oncology/t--x$1.csv");
});

Deno.test("csvPayloadPath() refuses a source table name that is not a safe file name", async (t) => {
  for (const table of ["../../escape", 'x"; drop table canary; --', "a/b", "a\\b", "x\u0000", ""]) {
    await t.step(JSON.stringify(table), () => {
      assert.throws(() => csvPayloadPath("oncology", table), (e) => {
        assert.ok(e instanceof UnsafeTableNameError);
        assert.equal(e.code, "unsafe_table_name");
        assert.ok(e.message.includes(JSON.stringify(table)));
        return true;
      });
    });
  }
});

Deno.test("csvPayloadPath() refuses an unsafe schema name", () => {
  assert.throws(() => csvPayloadPath("../x", "t"), RangeError);
});

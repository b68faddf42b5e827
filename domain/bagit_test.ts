import assert from "node:assert/strict";
import { bagInfoText, csvFormulaEscape } from "./bagit.ts";

const SHA = "0".repeat(128);

Deno.test("csvFormulaEscape() says whether, and which, CSV files were escaped", async (t) => {
  const file = (path: string, csvFormulaPrefix?: string) => ({
    path,
    sha512: SHA,
    bytes: 1,
    ...(csvFormulaPrefix === undefined ? {} : { csvFormulaPrefix }),
  });
  await t.step("none", () => {
    assert.equal(
      csvFormulaEscape([file("data/outputs/s/a.csv"), file("data/outputs/b")]),
      undefined,
    );
  });
  await t.step("every CSV file", () => {
    assert.deepEqual(
      csvFormulaEscape([
        file("data/outputs/s/b.csv", "'"),
        file("data/outputs/s/a.csv", "'"),
        file("data/outputs/database.duckdb"),
      ]),
      { prefix: "'" },
    );
  });
  await t.step("some CSV files", () => {
    assert.deepEqual(
      csvFormulaEscape([
        file("data/outputs/s/b.csv", "'"),
        file("data/outputs/t/a.csv"),
        file("data/outputs/s/a.csv", "'"),
      ]),
      { prefix: "'", files: ["data/outputs/s/a.csv", "data/outputs/s/b.csv"] },
    );
  });
});

Deno.test("bagInfoText() records the formula escape after the standard fields", () => {
  const info = {
    baggingDate: "2025-06-11",
    payloadBytes: 10,
    payloadFiles: 2,
    externalIdentifier: "Pr042/20250611_093000",
    softwareAgent: "cr8tor-publisher-ts",
  };
  const standard = "Bagging-Date: 2025-06-11\nPayload-Oxum: 10.2\n" +
    "External-Identifier: Pr042/20250611_093000\nBag-Software-Agent: cr8tor-publisher-ts\n";
  assert.equal(bagInfoText(info), standard);
  assert.equal(
    bagInfoText({ ...info, csvFormulaEscape: { prefix: "'" } }),
    standard + "CSV-Formula-Prefix: '\n",
  );
  assert.equal(
    bagInfoText({
      ...info,
      csvFormulaEscape: { prefix: "'", files: ["data/outputs/s/a.csv", "data/outputs/s/100%.csv"] },
    }),
    standard + "CSV-Formula-Prefix: '\nCSV-Formula-Prefixed-File: data/outputs/s/a.csv\n" +
      "CSV-Formula-Prefixed-File: data/outputs/s/100%25.csv\n",
  );
});

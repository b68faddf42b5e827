/**
 * Catalogue fixtures for app tests.
 *
 * @module
 */
import type { SchemaCatalog } from "../../domain/catalog.ts";

/** The `oncology` schema the request builders ask for. */
export const ONCOLOGY: SchemaCatalog = {
  name: "oncology",
  description: "Curated oncology tables",
  tables: [
    {
      name: "tumour_stage",
      kind: "table",
      description: "TNM stage lookup",
      primaryKey: ["stage_id"],
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
          dataType: "character varying(20)",
          logicalType: { kind: "text" },
          nullable: true,
          description: null,
        },
        {
          name: "secret_note",
          dataType: "text",
          logicalType: { kind: "text" },
          nullable: true,
          description: null,
        },
      ],
    },
    {
      name: "treatment_line",
      kind: "view",
      description: null,
      primaryKey: [],
      columns: [{
        name: "line_no",
        dataType: "integer",
        logicalType: { kind: "integer" },
        nullable: true,
        description: null,
      }],
    },
  ],
};

/** Rows of the `oncology` tables, canonical values in catalogue column order. */
export const ONCOLOGY_ROWS: ReadonlyMap<string, readonly (string | null)[][]> = new Map([
  ["oncology.tumour_stage", [
    ["1", "T1", "row-secret-one"],
    ["2", 'T2, "node"', null],
    ["3", "", "multi\nline"],
  ]],
  ["oncology.treatment_line", [["1"], ["2"], [null]]],
]);

/**
 * What a source database says about one schema, and the rule that narrows it to what a request asked for
 * (`cr8tor-contract.md` §5): listed tables and columns only; `null` or `[]` means all; matching is exact and
 * case-sensitive; unlike the reference, anything requested that does not exist is an error.
 *
 * @module
 */
import type { DatasetMetadata, DatasetMetadataPayload } from "./contract.ts";
import { DatasetItemsNotFoundError } from "./errors.ts";
import type { CanonicalRow, LogicalType } from "./logical_type.ts";

/** A column as the source's catalogue describes it. */
export interface CatalogColumn {
  readonly name: string;
  /** The source's own full type, with length, precision and scale, e.g. `numeric(10,2)`. */
  readonly dataType: string;
  /** What the column means independent of the source; decides the writers' types and the value forms. */
  readonly logicalType: LogicalType;
  readonly nullable: boolean;
  readonly description: string | null;
}

/** A table or view as the source's catalogue describes it; columns are in ordinal order. */
export interface CatalogTable {
  readonly name: string;
  readonly kind: "table" | "view";
  readonly description: string | null;
  readonly columns: readonly CatalogColumn[];
  /** Primary-key columns in key order; empty for views and tables without a key. */
  readonly primaryKey: readonly string[];
}

/** A schema as the source's catalogue describes it; tables are sorted by name. */
export interface SchemaCatalog {
  readonly name: string;
  readonly description: string | null;
  readonly tables: readonly CatalogTable[];
}

/** The most characters (UTF-16 code units) a schema, table or column description keeps. */
export const MAX_DESCRIPTION_CHARS = 4096;

/** What ends a description that was cut to {@link MAX_DESCRIPTION_CHARS}. */
export const TRUNCATION_MARKER = "… [truncated]";

/**
 * A source description cut to at most {@link MAX_DESCRIPTION_CHARS} characters, the last of them
 * {@link TRUNCATION_MARKER}, never between the two halves of a surrogate pair. Shorter descriptions and
 * `null` are returned as they are.
 */
export function capDescription(description: string | null): string | null {
  if (description === null || description.length <= MAX_DESCRIPTION_CHARS) return description;
  let end = MAX_DESCRIPTION_CHARS - TRUNCATION_MARKER.length;
  const last = description.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return description.slice(0, end) + TRUNCATION_MARKER;
}

/** The catalogue with every description (schema, tables, columns) capped by {@link capDescription}. */
export function capDescriptions(catalog: SchemaCatalog): SchemaCatalog {
  return {
    ...catalog,
    description: capDescription(catalog.description),
    tables: catalog.tables.map((table) => ({
      ...table,
      description: capDescription(table.description),
      columns: table.columns.map((column) => ({
        ...column,
        description: capDescription(column.description),
      })),
    })),
  };
}

/**
 * Narrows a catalogue to the tables and columns a dataset asks for, keeping catalogue order, and caps
 * every description ({@link capDescriptions}): this is where a source's catalogue enters both the
 * metadata reply and packaging, so no description longer than {@link MAX_DESCRIPTION_CHARS} goes further.
 *
 * @throws {DatasetItemsNotFoundError} listing every requested table or column that does not exist.
 */
export function selectDataset(catalog: SchemaCatalog, dataset: DatasetMetadata): SchemaCatalog {
  return capDescriptions(narrowCatalog(catalog, dataset));
}

function narrowCatalog(catalog: SchemaCatalog, dataset: DatasetMetadata): SchemaCatalog {
  const requested = dataset.tables ?? [];
  if (requested.length === 0) return catalog;

  const byName = new Map(catalog.tables.map((t) => [t.name, t]));
  const missingTables: string[] = [];
  const missingColumns: string[] = [];
  const wantedColumns = new Map<string, Set<string> | "all">();
  for (const table of requested) {
    const found = byName.get(table.name);
    if (found === undefined) {
      missingTables.push(table.name);
      continue;
    }
    const columns = table.columns ?? [];
    if (columns.length === 0) {
      wantedColumns.set(table.name, "all");
      continue;
    }
    const present = new Set(found.columns.map((c) => c.name));
    for (const column of columns) {
      if (!present.has(column.name)) missingColumns.push(`${table.name}.${column.name}`);
    }
    wantedColumns.set(table.name, new Set(columns.map((c) => c.name)));
  }
  if (missingTables.length > 0 || missingColumns.length > 0) {
    throw new DatasetItemsNotFoundError(catalog.name, {
      tables: missingTables,
      columns: missingColumns,
    });
  }

  const tables = catalog.tables.flatMap((table) => {
    const wanted = wantedColumns.get(table.name);
    if (wanted === undefined) return [];
    if (wanted === "all") return [table];
    return [{ ...table, columns: table.columns.filter((c) => wanted.has(c.name)) }];
  });
  return { ...catalog, tables };
}

/**
 * Builds the metadata service's reply. `name` is the dataset's own name when the request gave one, else the
 * schema name (the reference always answered `default_name`). A description the request gives for the
 * dataset, a table or a column is returned unchanged; the source's comment fills only those it leaves
 * out, null or blank. The CLI writes the reply's dataset and table descriptions over what the user wrote,
 * so answering the catalogue's would lose the user's words.
 */
export function metadataPayload(
  catalog: SchemaCatalog,
  dataset: DatasetMetadata,
): DatasetMetadataPayload {
  const requestedTables = new Map((dataset.tables ?? []).map((t) => [t.name, t]));
  return {
    name: dataset.name ?? catalog.name,
    schema_name: catalog.name,
    description: describedBy(dataset.description, catalog.description),
    tables: catalog.tables.map((table) => {
      const requested = requestedTables.get(table.name);
      const requestedColumns = new Map((requested?.columns ?? []).map((c) => [c.name, c]));
      return {
        name: table.name,
        columns: table.columns.map((column) => ({
          name: column.name,
          datatype: column.dataType,
          description: describedBy(
            requestedColumns.get(column.name)?.description,
            column.description,
          ),
          nullable: column.nullable,
        })),
        description: describedBy(requested?.description, table.description),
        primary_key: [...table.primaryKey],
      };
    }),
    staging_path: dataset.staging_path ?? null,
    publish_path: dataset.publish_path ?? null,
  };
}

/** The request's description when it gives one that is not blank, else the catalogue's. */
function describedBy(
  requested: string | null | undefined,
  catalogued: string | null,
): string | null {
  return requested !== undefined && requested !== null && requested.trim() !== ""
    ? requested
    : catalogued;
}

/** One table or view to extract: its schema and the selected columns, in catalogue order. */
export interface TableExtract {
  readonly schema: string;
  /** The table with only the selected columns; `primaryKey` is empty unless every key column is selected. */
  readonly table: CatalogTable;
}

/** Turns a selected catalogue into one extract per table. */
export function tableExtracts(selected: SchemaCatalog): TableExtract[] {
  return selected.tables.map((table) => {
    const names = new Set(table.columns.map((c) => c.name));
    const keyKept = table.primaryKey.every((k) => names.has(k));
    return { schema: selected.name, table: keyKept ? table : { ...table, primaryKey: [] } };
  });
}

/**
 * How much one `readRows` call may hold at once, and the largest value it may read. Every field has a
 * default (see `ports/source_database.ts`).
 */
export interface ReadRowsOptions {
  /** The most rows in one batch. */
  readonly batchRows?: number;
  /** A batch is handed over as soon as the estimated size of its values reaches this many bytes. */
  readonly batchBytes?: number;
  /** The largest value, in UTF-8 bytes of its canonical text; a larger one fails the read. */
  readonly maxValueBytes?: number;
}

/** What a `readCsv` call may read: the same per-value limit as {@link ReadRowsOptions}. */
export interface ReadCsvOptions {
  /** The largest value, in UTF-8 bytes of its canonical text; a larger one fails the read. */
  readonly maxValueBytes?: number;
  /** Aborting it stops the read; a source that can cancels its running query at once. */
  readonly signal?: AbortSignal | undefined;
}

/** Reads the rows of extracts; the part of a source database that dataset writers use. */
export interface TableReader {
  /** Streams the extract's columns in batches bounded in rows and bytes, of canonical values. */
  readRows(extract: TableExtract, options?: ReadRowsOptions): AsyncIterable<CanonicalRow[]>;
  /** Optional fast path: the same rows as canonical CSV, header first. */
  readCsv?(extract: TableExtract, options?: ReadCsvOptions): AsyncIterable<Uint8Array>;
}

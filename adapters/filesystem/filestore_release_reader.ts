/**
 * Reads a filestore's published releases (`ports/release_reader.ts`): the production bag of a run,
 * `production/{project}/{start}/`, never staging. Its payload manifest (`manifest-sha512.txt`) says
 * which files the release has and their SHA-512; a revoked run has no production folder (it was renamed
 * away at once, `local_filestore.ts`), so it reads as not published.
 *
 * - **CSV files** (`data/outputs/{dataset}/{table}.csv`): a table is its file; rows come in file order
 *   (a CSV file has no index) and `key` is empty. A page is a seek to a byte offset and a parse of
 *   `limit` records (`domain/csv_records.ts`), so paging costs the same at any depth. Its cursor carries
 *   the file's SHA-512 from the manifest, the byte offset of the next row and its number: when a
 *   republish replaced the file with other bytes, the position means nothing, and the read is refused
 *   with `release_changed` (409; the client starts again from the first page). A republish of the same
 *   bytes keeps the SHA-512, and paging goes on. Column types come from the release's RO-Crate (the
 *   source's types) when the bag has one, else `text`.
 * - **The DuckDB file** (`data/outputs/database.duckdb`): read through DuckDB
 *   (`adapters/duckdb/duckdb_release_file.ts`), by primary key where the table has one.
 *
 * The manifest is read before and after the file is opened: a swap of the bag in between (a republish)
 * is seen, and the read is tried again, so a page never pairs one bag's manifest with another's file.
 * Every folder and file is checked (no link, one name) through {@link ConfinedTree}.
 *
 * @module
 */
import type { FileHandle } from "node:fs/promises";
import { parseManifest } from "../../domain/bagit.ts";
import { parseCsvRecords } from "../../domain/csv_records.ts";
import { csvToJson } from "../../domain/csv_json.ts";
import { isSafeIdentifier } from "../../domain/names.ts";
import { CRATE_TAG_FILE } from "../../domain/release_receipt.ts";
import {
  InvalidCursorError,
  MAX_PAGE_CHARS,
  type ReadPosition,
  type ReleaseColumn,
  type ReleaseTable,
} from "../../domain/release_read.ts";
import {
  DUCKDB_PAYLOAD_PATH,
  PAYLOAD_DIR,
  runFolder,
  type RunRef,
} from "../../domain/staging_layout.ts";
import { UnsafeFilesystemEntryError } from "../../ports/filestore.ts";
import {
  type JsonPage,
  type ReadOrientation,
  type ReadPage,
  type ReadPageRequest,
  ReleaseChangedError,
  ReleaseNotReadableError,
  type ReleaseReader,
  ReleaseTableNotFoundError,
} from "../../ports/release_reader.ts";
import { ConfinedTree } from "./confined_tree.ts";

const COMMA_BYTES = new Uint8Array([0x2c]);

/**
 * DuckDB's reader, loaded with DuckDB on the first read of a DuckDB release, so that a service reading
 * only CSV files and PostgreSQL tables never holds DuckDB's native library (about 30 MB resident).
 */
const duckdbReleaseFile = () => import("../duckdb/duckdb_release_file.ts");

/** Bytes read at a time from a CSV file. */
const READ_BYTES = 1024 * 1024;

/** The largest header row read to learn a CSV file's columns. */
const MAX_HEADER_BYTES = 4 * 1024 * 1024;

const CSV_PATH = /^data\/outputs\/([^/]+)\/([^/]+)\.csv$/;

/** A run's production bag as its manifest lists it. */
interface Bag {
  readonly folder: string;
  /** Payload paths to their SHA-512. */
  readonly files: ReadonlyMap<string, string>;
  /** The manifest's text, to see a swap. */
  readonly manifest: string;
}

/** The published releases of one filestore. */
export class FilestoreReleaseReader implements ReleaseReader {
  readonly #tree: ConfinedTree;

  /** @param base the filestore's mount path (`TARGET_STORAGE_ACCOUNT_{NAME}_SDE_MNT_PATH`). */
  constructor(base: string) {
    this.#tree = new ConfinedTree(base);
  }

  async listTables(run: RunRef): Promise<ReleaseTable[]> {
    const bag = await this.#bag(run);
    const types = await this.#crateColumns(bag);
    const tables: ReleaseTable[] = [];
    const duckdbSha = bag.files.get(DUCKDB_PAYLOAD_PATH);
    if (duckdbSha !== undefined) {
      const path = await this.#plainFile(`${bag.folder}/${DUCKDB_PAYLOAD_PATH}`);
      for (const table of await (await duckdbReleaseFile()).duckdbReleaseTables(path)) {
        tables.push({
          ...table,
          columns: table.columns.map((c) => ({
            ...c,
            description: c.description ??
              types.get(columnId(table.dataset, table.name, c.name))?.description ?? null,
          })),
        });
      }
    }
    for (const path of [...bag.files.keys()].sort()) {
      const match = CSV_PATH.exec(path);
      if (match === null) continue;
      const [, dataset, name] = match as unknown as [string, string, string];
      if (tables.some((t) => t.dataset === dataset && t.name === name)) continue;
      const header = await this.#withFile(bag, path, (file) => readHeader(file));
      tables.push({
        name,
        dataset,
        key: [],
        columns: header.names.map((column): ReleaseColumn => {
          const described = types.get(columnId(dataset, name, column));
          return {
            name: column,
            type: described?.type ?? "text",
            description: described?.description ?? null,
          };
        }),
      });
    }
    return tables.sort((a, b) =>
      a.dataset < b.dataset ? -1 : a.dataset > b.dataset ? 1 : a.name < b.name ? -1 : 1
    );
  }

  async readPage(run: RunRef, request: ReadPageRequest): Promise<ReadPage> {
    const bag = await this.#bag(run);
    const fromDuckdb = await this.#duckdbPage(bag, request);
    if (fromDuckdb !== undefined) return fromDuckdb;
    const page = await this.#csvPage(bag, request, "tabular");
    const rows = page.records === 0
      ? []
      : JSON.parse(`[${new TextDecoder().decode(page.json)}]`) as (string | null)[][];
    if (rows.some((r) => r.length !== page.columns.length)) {
      throw new InvalidCursorError("points inside a record");
    }
    return { columns: page.columns, rows, next: page.next };
  }

  /** CSV files: the page transcoded to JSON from the file's bytes (`domain/csv_json.ts`). */
  async readPageJson(
    run: RunRef,
    request: ReadPageRequest,
    orientation: ReadOrientation,
  ): Promise<JsonPage | undefined> {
    const bag = await this.#bag(run);
    if (await this.#duckdbHas(bag, request)) return undefined;
    const page = await this.#csvPage(bag, request, orientation);
    return { columns: page.columns, rowCount: page.records, json: page.json, next: page.next };
  }

  /** Whether the bag's DuckDB file holds the table. */
  async #duckdbHas(bag: Bag, request: ReadPageRequest): Promise<boolean> {
    if (!bag.files.has(DUCKDB_PAYLOAD_PATH)) return false;
    const path = await this.#plainFile(`${bag.folder}/${DUCKDB_PAYLOAD_PATH}`);
    return (await (await duckdbReleaseFile()).duckdbReleaseTables(path)).some((t) =>
      t.dataset === request.dataset && t.name === request.table
    );
  }

  /** A page of a table of the bag's DuckDB file; `undefined` when it has no such table. */
  async #duckdbPage(bag: Bag, request: ReadPageRequest): Promise<ReadPage | undefined> {
    const sha512 = bag.files.get(DUCKDB_PAYLOAD_PATH);
    if (sha512 === undefined) return undefined;
    const path = await this.#plainFile(`${bag.folder}/${DUCKDB_PAYLOAD_PATH}`);
    return await (await duckdbReleaseFile()).duckdbReleasePage(path, sha512, request);
  }

  /**
   * A page of a CSV file of the bag as JSON: a seek to the cursor's offset, then records transcoded
   * until the limit or the size cap.
   */
  async #csvPage(
    bag: Bag,
    request: ReadPageRequest,
    orientation: ReadOrientation,
  ): Promise<{
    columns: { name: string; type: string }[];
    json: Uint8Array;
    records: number;
    next: ReadPosition | null;
  }> {
    const { dataset, table } = request;
    if (!isSafeIdentifier(dataset) || !isSafeIdentifier(table)) {
      throw new ReleaseTableNotFoundError(dataset, table);
    }
    const path = `${PAYLOAD_DIR}/${dataset}/${table}.csv`;
    const sha512 = bag.files.get(path);
    if (sha512 === undefined) throw new ReleaseTableNotFoundError(dataset, table);
    const after = request.after;
    if (after !== null) {
      if (after.kind !== "file") throw new InvalidCursorError("is not a position in a CSV file");
      if (after.sha512 !== sha512) throw new ReleaseChangedError(dataset, table);
    }
    const types = await this.#crateColumns(bag);
    return await this.#withFile(bag, path, async (file) => {
      const header = await readHeader(file);
      const columns = header.names.map((name) => ({
        name,
        type: types.get(columnId(dataset, table, name))?.type ?? "text",
      }));
      const names = orientation === "records" ? header.names : undefined;
      const size = (await file.stat()).size;
      let offset = after?.offset ?? header.end;
      let row = after?.row ?? 0;
      if (offset < header.end || offset > size) {
        throw new InvalidCursorError("points outside the file");
      }
      const parts: Uint8Array[] = [];
      let outSize = 0;
      let records = 0;
      let bytes = 0;
      const maxChars = request.maxChars ?? MAX_PAGE_CHARS;
      let chunk = READ_BYTES;
      while (offset < size && records < request.limit && (bytes < maxChars || records === 0)) {
        const length = Math.min(chunk, size - offset);
        const buffer = new Uint8Array(length);
        const { bytesRead } = await file.read(buffer, 0, length, offset);
        const final = offset + bytesRead >= size;
        let page;
        try {
          page = csvToJson(buffer.subarray(0, bytesRead), 0, {
            maxRecords: request.limit - records,
            maxBytes: records === 0 ? maxChars : Math.max(1, maxChars - bytes),
            final,
            names,
          });
        } catch (e) {
          // Not the start of a record: an offset this service did not issue for this file.
          if (after !== null && records === 0) {
            throw new InvalidCursorError("points inside a record");
          }
          throw e;
        }
        if (page.records === 0) {
          if (final) break;
          chunk *= 2; // a record longer than the buffer
          continue;
        }
        if (records > 0) {
          parts.push(COMMA_BYTES);
          outSize++;
        }
        parts.push(page.json);
        outSize += page.json.length;
        offset += page.end;
        bytes += page.end;
        records += page.records;
        row += page.records;
        chunk = READ_BYTES;
      }
      const json = new Uint8Array(outSize);
      let at = 0;
      for (const part of parts) {
        json.set(part, at);
        at += part.length;
      }
      const next: ReadPosition | null = offset < size && records > 0
        ? { kind: "file", sha512, offset, row }
        : null;
      return { columns, json, records, next };
    });
  }

  /**
   * The run's production bag, from its payload manifest.
   *
   * @throws {ReleaseNotReadableError} when the run has no production bag (never published, or revoked).
   */
  async #bag(run: RunRef): Promise<Bag> {
    const folder = runFolder("production", run);
    if (await this.#tree.expectDir(folder, { missingOk: true }) !== "dir") {
      throw new ReleaseNotReadableError(run);
    }
    const manifest = await this.#readText(`${folder}/manifest-sha512.txt`);
    if (manifest === undefined) throw new ReleaseNotReadableError(run);
    return {
      folder,
      manifest,
      files: new Map(parseManifest(manifest).map((e) => [e.path, e.sha512])),
    };
  }

  /**
   * Opens a payload file of the bag and runs `work` on it, once the manifest read again shows the bag
   * was not swapped while the file was opened (else it tries again with the new bag's manifest).
   */
  async #withFile<T>(bag: Bag, path: string, work: (file: FileHandle) => Promise<T>): Promise<T> {
    for (let attempt = 0;; attempt++) {
      const file = await this.#tree.openRead(`${bag.folder}/${path}`);
      if (file === undefined) throw new ReleaseChangedError(...datasetAndTable(path));
      try {
        const now = await this.#readText(`${bag.folder}/manifest-sha512.txt`);
        if (now === bag.manifest) return await work(file);
        if (attempt >= 2 || now === undefined) {
          throw new ReleaseChangedError(...datasetAndTable(path));
        }
        const files = new Map(parseManifest(now).map((e) => [e.path, e.sha512]));
        if (files.get(path) !== bag.files.get(path)) {
          throw new ReleaseChangedError(...datasetAndTable(path));
        }
        bag = { ...bag, manifest: now, files };
      } finally {
        await file.close();
      }
    }
  }

  /** The absolute path of a plain file of the bag (checked: no link, one name). */
  async #plainFile(relative: string): Promise<string> {
    const file = await this.#tree.openRead(relative);
    if (file === undefined) throw new UnsafeFilesystemEntryError(relative, "is missing");
    await file.close();
    return this.#tree.path(relative);
  }

  /** The source's column types and descriptions, from the bag's RO-Crate; none without one. */
  async #crateColumns(
    bag: Bag,
  ): Promise<Map<string, { type: string; description: string | null }>> {
    const columns = new Map<string, { type: string; description: string | null }>();
    const text = await this.#readText(`${bag.folder}/${CRATE_TAG_FILE}`);
    if (text === undefined) return columns;
    let graph: unknown;
    try {
      graph = (JSON.parse(text) as { "@graph"?: unknown })["@graph"];
    } catch {
      return columns;
    }
    if (!Array.isArray(graph)) return columns;
    for (const entity of graph as Record<string, unknown>[]) {
      const id = entity["@id"];
      if (typeof id !== "string" || !id.startsWith("#source/")) continue;
      if (typeof entity.datatype !== "string") continue;
      columns.set(id, {
        type: entity.datatype,
        description: typeof entity.description === "string" ? entity.description : null,
      });
    }
    return columns;
  }

  async #readText(relative: string): Promise<string | undefined> {
    const file = await this.#tree.openRead(relative);
    if (file === undefined) return undefined;
    try {
      return await file.readFile({ encoding: "utf8" });
    } finally {
      await file.close();
    }
  }
}

/** The crate's id of a source column (`fragment("source", schema, table, column)`). */
function columnId(dataset: string, table: string, column: string): string {
  return `#source/${[dataset, table, column].map(encodeURIComponent).join("/")}`;
}

function datasetAndTable(path: string): [string, string] {
  const match = CSV_PATH.exec(path);
  return match === null ? ["", path] : [match[1]!, match[2]!];
}

/** A CSV file's header: the column names and the offset of the first row. */
async function readHeader(file: FileHandle): Promise<{ names: string[]; end: number }> {
  const size = (await file.stat()).size;
  let length = Math.min(64 * 1024, size);
  for (;;) {
    const buffer = new Uint8Array(length);
    const { bytesRead } = await file.read(buffer, 0, length, 0);
    const parsed = parseCsvRecords(buffer.subarray(0, bytesRead), 0, {
      maxRecords: 1,
      maxBytes: MAX_HEADER_BYTES,
      final: bytesRead >= size,
    });
    const names = parsed.records[0];
    if (names !== undefined) return { names: names.map((n) => n ?? ""), end: parsed.end };
    if (bytesRead >= size || length >= MAX_HEADER_BYTES) return { names: [], end: size };
    length = Math.min(length * 2, MAX_HEADER_BYTES, size);
  }
}

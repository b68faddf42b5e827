/**
 * The contract every {@link DatasetWriter} passes (DuckDB, CSV, ...): what goes in as canonical values
 * comes back out exactly, checksums describe the files on disk, empty tables and failing sources behave,
 * and re-staging one dataset of a run keeps the others.
 *
 * The writer's test supplies `readBack`, which turns staged files back into canonical rows (see
 * `domain/logical_type.ts`) using only the files, so the suite can compare them with what the source
 * sent. The suite stages like the filestore does: each write gets a fresh work folder; its files are then
 * moved into a run folder, `copyPrevious` copies from that run folder, and `reuse` moves a left-over
 * whose SHA-512 matches from a left-over folder.
 *
 * Stopping and resuming: a write stops at once when its signal aborts, even in the middle of a read, and
 * rejects with the signal's reason; each table reports `done` exactly once, with the SHA-512 of its own
 * file or `null` (a writer that reports `null` never reuses anything); a table whose left-over has the
 * recorded SHA-512 is kept without being read, any other is read again.
 *
 * ```ts
 * Deno.test("DuckdbDatasetWriter passes the DatasetWriter contract", (t) =>
 *   datasetWriterContract(t, () => new DuckdbDatasetWriter(), readDuckdb));
 * ```
 *
 * @module
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { constants, copyFile, lstat, mkdir, readFile, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import type {
  CatalogColumn,
  CatalogTable,
  SchemaCatalog,
  TableExtract,
} from "../../domain/catalog.ts";
import { tableExtracts } from "../../domain/catalog.ts";
import type { CanonicalRow, CanonicalValue, LogicalType } from "../../domain/logical_type.ts";
import type { ProgressReport } from "../../domain/long_work.ts";
import { csvPayloadPath } from "../../domain/staging_layout.ts";
import type { TableReader } from "../../domain/catalog.ts";
import type {
  DatasetWriter,
  StagedFile,
  StagingWork,
  WriteOptions,
} from "../../ports/dataset_writer.ts";
import { SourceUnavailableError } from "../../ports/source_database.ts";
import { MemorySourceDatabase } from "../../adapters/memory/memory_source_database.ts";

/** A file's bytes in one chunk (the contract's files are small). */
async function* readChunks(path: string): AsyncGenerator<Uint8Array, void, undefined> {
  yield await readFile(path);
}

/**
 * A work folder for a writer test: `copyPrevious` copies a file from `runDir` (the run's staged files)
 * when `staged` says the run has it, as the filestore does after checking it; `reuse` moves a plain file
 * from `leftOverDir` (laid out like a run folder) when its SHA-512 matches.
 */
export function stagingWork(
  dir: string,
  runDir?: string,
  staged: (path: string) => boolean = () => true,
  leftOverDir?: string,
): StagingWork {
  return {
    dir,
    read: (path) => readChunks(join(dir, path)),
    reuse: async (path, sha512) => {
      if (leftOverDir === undefined) return undefined;
      const from = join(leftOverDir, path);
      const found = await lstat(from).catch(() => undefined);
      if (found === undefined) return undefined;
      if (!found.isFile() || found.nlink !== 1) throw new Error(`${path} is not a plain file`);
      if (await sha512Of(from) !== sha512) return undefined;
      await mkdir(dirname(join(dir, path)), { recursive: true });
      await rename(from, join(dir, path));
      return { path, sha512, bytes: found.size };
    },
    copyPrevious: async (path) => {
      if (runDir === undefined || !staged(path)) return false;
      try {
        await mkdir(dirname(join(dir, path)), { recursive: true });
        await copyFile(join(runDir, path), join(dir, path), constants.COPYFILE_EXCL);
        return true;
      } catch (e) {
        if ((e as { code?: string }).code === "ENOENT") return false;
        throw e;
      }
    },
  };
}

/** Staged data as canonical rows, keyed `schema.table`, rows in the order the source sent them. */
export type TablesRead = ReadonlyMap<string, readonly CanonicalRow[]>;

/**
 * Reads every table the staged files hold, using nothing but the files.
 *
 * @param dir the folder the files' paths are relative to.
 * @param files every file the run now holds.
 */
export type ReadBack = (dir: string, files: readonly StagedFile[]) => Promise<TablesRead>;

function column(name: string, logicalType: LogicalType, nullable = true): CatalogColumn {
  return { name, dataType: logicalType.kind, logicalType, nullable, description: null };
}

function table(
  name: string,
  columns: readonly CatalogColumn[],
  primaryKey: readonly string[] = [],
): CatalogTable {
  return { name, kind: "table", description: null, columns, primaryKey };
}

/**
 * Edge values of every logical type, in canonical form. Every writer must store each of them exactly;
 * values only some formats can hold (a `NaN` in a DECIMAL column, an infinite interval) belong in that
 * writer's own tests.
 */
export const EDGE_VALUES: ReadonlyArray<
  readonly [name: string, type: LogicalType, values: readonly string[]]
> = [
  ["b", { kind: "boolean" }, ["true", "false"]],
  ["si", { kind: "smallint" }, ["-32768", "32767", "0", "-1"]],
  ["i", { kind: "integer" }, ["-2147483648", "2147483647", "0"]],
  ["bi", { kind: "bigint" }, ["-9223372036854775808", "9223372036854775807", "0", "42"]],
  ["d18", { kind: "decimal", precision: 18, scale: 2 }, [
    "-9999999999999999.99",
    "9999999999999999.99",
    "0.00",
    "0.01",
    "-0.01",
    "12.30",
  ]],
  ["d38", { kind: "decimal", precision: 38, scale: 10 }, [
    "-9999999999999999999999999999.9999999999",
    "9999999999999999999999999999.9999999999",
    "0.0000000001",
    "-0.0000000001",
    "0.0000000000",
    "123456789.1234567890",
  ]],
  ["d4", { kind: "decimal", precision: 4, scale: 0 }, ["9999", "-9999", "0"]],
  ["d50", { kind: "decimal", precision: 50, scale: 5 }, [
    "123456789012345678901234567890123456789012345.12345",
    "-0.00001",
    "0.00000",
  ]],
  ["num", { kind: "numeric" }, [
    "12345678901234567890123456789012345678901234567890.1234567890123456789",
    "NaN",
    "Infinity",
    "-Infinity",
    "0",
    "-1.50",
    "0.000000000000000000000000000000000000000001",
  ]],
  ["r", { kind: "real" }, [
    "0.1",
    "3.4028235e+38",
    "-1.1754944e-38",
    "1e-45",
    "NaN",
    "Infinity",
    "-Infinity",
    "-0",
    "1.5",
    "123456",
  ]],
  ["dbl", { kind: "double" }, [
    "0.30000000000000004",
    "1e+15",
    "100000000000000",
    "1e-05",
    "0.0001",
    "NaN",
    "Infinity",
    "-Infinity",
    "5e-324",
    "2.225073858507201e-308",
    "1.7976931348623157e+308",
    "-0",
    "-123.456",
  ]],
  ["dt", { kind: "date" }, [
    "0001-01-01",
    "1850-02-28",
    "9999-12-31",
    "0044-03-15 BC",
    "0001-12-31 BC",
    "2000-02-29",
    "1969-12-31",
    "1970-01-01",
    "infinity",
    "-infinity",
    "4713-01-01 BC",
    "5874897-12-31",
  ]],
  ["tm", { kind: "time" }, [
    "00:00:00",
    "23:59:59.999999",
    "12:00:00.1",
    "24:00:00",
    "08:30:00.05",
  ]],
  ["ts", { kind: "timestamp" }, [
    "1969-07-20 20:17:40.5",
    "1900-01-01 00:00:00.000001",
    "1601-01-01 00:00:00",
    "2038-01-19 03:14:08",
    "2100-12-31 23:59:59.999999",
    "0044-03-15 12:00:00 BC",
    "infinity",
    "-infinity",
    "10000-01-01 00:00:00",
    "4713-01-01 00:00:00 BC",
  ]],
  ["tstz", { kind: "timestamptz" }, [
    "2020-01-01 00:00:01.123456+00",
    "1950-06-15 08:30:00+00",
    "1899-12-31 23:59:59.999999+00",
    "2262-04-11 23:47:16.854775+00",
    "0044-03-15 12:00:00+00 BC",
    "infinity",
    "-infinity",
  ]],
  ["iv", { kind: "interval" }, [
    "00:00:00",
    "1 year 2 mons 3 days 04:05:06.789",
    "-1 years -2 mons +3 days -04:05:06",
    "1 day",
    "-1 days",
    "100:00:00",
    "1 mon -00:00:00.000001",
    "178956970 years 7 mons",
    "-2147483648 days",
    "2562047788:00:54.775807",
  ]],
  ["u", { kind: "uuid" }, [
    "00000000-0000-0000-0000-000000000000",
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
    "7fffffff-ffff-ffff-ffff-ffffffffffff",
    "80000000-0000-0000-0000-000000000000",
    "9b2c1f3e-4d5a-4b6c-8d7e-0f1a2b3c4d5e",
    "c0ffee00-0000-4000-8000-000000000001",
  ]],
  ["j", { kind: "json" }, [
    '{"a": 1}',
    '[1, 2, {"b": null}]',
    '"string"',
    "null",
    '{"nested": {"x": [true, false]},   "e": "\\u00e9"}',
  ]],
  ["tx", { kind: "text" }, ["", "plain", " padded "]],
  ["bin", { kind: "binary" }, ["\\x", "\\x00ff", "\\x000102fffe", "\\xdeadbeef"]],
];

/** Text that trips up encoders: separators, quotes, line breaks, escapes, and beyond the BMP. */
export const TEXT_VALUES: readonly CanonicalValue[] = [
  "",
  null,
  "a,b,c",
  'say "hi"',
  "'single'",
  "line\nbreak",
  "crlf\r\nline",
  "trailing\n",
  "back\\slash \\N \\x00",
  "tab\tseparated",
  "emoji 😀 👩‍🔬 🇬🇧",
  "accents é ñ ü, combining é, CJK 漢字, RTL שלום",
  "NULL",
  "null",
  "\\N",
  " ",
  "x".repeat(100_000),
];

const SCHEMA = "contract_a";
const OTHER_SCHEMA = "contract_b";
const MANY_ROWS = 5_000;

function edgeRows(): CanonicalRow[] {
  const longest = Math.max(...EDGE_VALUES.map(([, , values]) => values.length));
  const rows: CanonicalRow[] = [];
  for (let r = 0; r < longest; r++) {
    rows.push([String(r + 1), ...EDGE_VALUES.map(([, , values]) => values[r % values.length]!)]);
  }
  rows.push([String(longest + 1), ...EDGE_VALUES.map(() => null)]);
  return rows;
}

function manyRows(): CanonicalRow[] {
  return Array.from({ length: MANY_ROWS }, (_, i) => [
    String(i),
    i % 3 === 0 ? null : i % 3 === 1 ? "" : `row ${i}`,
    String(i / 7),
  ]);
}

/** The fixture: every logical type, awkward text, a composite key, many rows, and an empty table. */
function fixture(schema: string): { catalog: SchemaCatalog; rows: Map<string, CanonicalRow[]> } {
  const tables = [
    table("all_types", [
      column("id", { kind: "integer" }, false),
      ...EDGE_VALUES.map(([name, type]) => column(name, type)),
    ], ["id"]),
    table("texts", [column("id", { kind: "integer" }, false), column("t", { kind: "text" })]),
    table("visits", [
      column("visit_no", { kind: "integer" }, false),
      column("patient_id", { kind: "bigint" }, false),
      column("visited_on", { kind: "date" }, false),
      column("notes", { kind: "text" }),
    ], ["patient_id", "visit_no"]),
    table("many_rows", [
      column("id", { kind: "bigint" }, false),
      column("v", { kind: "text" }),
      column("x", { kind: "double" }),
    ], ["id"]),
    table("empty_table", [column("id", { kind: "integer" }, false), column("t", { kind: "text" })]),
  ];
  const rows = new Map<string, CanonicalRow[]>([
    [`${schema}.all_types`, edgeRows()],
    [`${schema}.texts`, TEXT_VALUES.map((t, i) => [String(i), t])],
    [`${schema}.visits`, [
      ["2", "10", "2024-01-02", "second"],
      ["1", "10", "2024-01-01", null],
      ["1", "11", "2023-12-31", "other patient"],
    ]],
    [`${schema}.many_rows`, manyRows()],
  ]);
  return { catalog: { name: schema, description: null, tables }, rows };
}

/** A second, small dataset for the multi-dataset steps. */
function smallFixture(
  schema: string,
  label: string,
): { catalog: SchemaCatalog; rows: Map<string, CanonicalRow[]> } {
  const tables = [
    table("items", [column("id", { kind: "integer" }, false), column("label", { kind: "text" })], [
      "id",
    ]),
  ];
  const rows = new Map([[`${schema}.items`, [["1", `${label} one`], ["2", `${label} two`]]]]);
  return { catalog: { name: schema, description: null, tables }, rows };
}

function expected(
  fix: { catalog: SchemaCatalog; rows: Map<string, CanonicalRow[]> },
): Map<string, CanonicalRow[]> {
  return new Map(
    fix.catalog.tables.map((t) => {
      const key = `${fix.catalog.name}.${t.name}`;
      return [key, fix.rows.get(key) ?? []];
    }),
  );
}

async function sha512Of(path: string): Promise<string> {
  return createHash("sha512").update(await readFile(path)).digest("hex");
}

/**
 * A run folder filled the way the filestore fills it: each write gets a fresh work folder, then the files
 * it returns replace the run's files at the same paths, and files a dataset no longer has are removed.
 */
class RunFolder {
  readonly #files = new Map<string, StagedFile>();
  readonly #owners = new Map<string, Set<string>>();
  #works = 0;

  constructor(readonly root: string) {}

  get dir(): string {
    return join(this.root, "run");
  }

  get files(): StagedFile[] {
    return [...this.#files.values()].sort((a, b) => a.path < b.path ? -1 : 1);
  }

  /** Where left-overs of an interrupted stage are, laid out like the run folder. */
  get leftOverDir(): string {
    return join(this.root, "left-over");
  }

  /** Writes one dataset; checks that the run's files were left alone, then moves the new ones in. */
  async stage(
    dataset: string,
    write: (work: StagingWork) => Promise<StagedFile[]>,
  ): Promise<{ workDir: string; files: StagedFile[] }> {
    const workDir = join(this.root, `work-${++this.#works}`);
    await mkdir(workDir, { recursive: true });
    const before = new Map<string, string>();
    for (const path of this.#files.keys()) before.set(path, await sha512Of(join(this.dir, path)));
    let files: StagedFile[];
    try {
      files = await write(
        stagingWork(workDir, this.dir, (path) => this.#files.has(path), this.leftOverDir),
      );
    } finally {
      for (const [path, sha512] of before) {
        assert.equal(
          await sha512Of(join(this.dir, path)),
          sha512,
          `the writer changed the run's staged ${path}`,
        );
      }
    }
    for (const file of files) {
      await mkdir(dirname(join(this.dir, file.path)), { recursive: true });
      await rename(join(workDir, file.path), join(this.dir, file.path));
      this.#files.set(file.path, file);
    }
    const kept = new Set(files.map((f) => f.path));
    for (const [path, owners] of this.#owners) {
      if (owners.delete(dataset) && owners.size === 0 && !kept.has(path)) {
        await rm(join(this.dir, path));
        this.#files.delete(path);
      }
    }
    for (const path of kept) {
      const owners = this.#owners.get(path) ?? new Set();
      owners.add(dataset);
      this.#owners.set(path, owners);
    }
    return { workDir, files };
  }
}

/**
 * Runs the DatasetWriter contract.
 *
 * @param t the test context; every check is one step.
 * @param makeWriter builds the writer under test.
 * @param readBack reads staged files back as canonical rows.
 */
export async function datasetWriterContract(
  t: Deno.TestContext,
  makeWriter: () => DatasetWriter,
  readBack: ReadBack,
): Promise<void> {
  const options: WriteOptions = { concurrency: 2, batchRows: 333 };

  async function withRun(fn: (run: RunFolder) => Promise<void>): Promise<void> {
    const root = await Deno.makeTempDir({ prefix: "dataset-writer-contract-" });
    try {
      await fn(new RunFolder(root));
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  }

  function writeDataset(
    run: RunFolder,
    fix: { catalog: SchemaCatalog; rows: Map<string, CanonicalRow[]> },
    extracts: readonly TableExtract[] = tableExtracts(fix.catalog),
    source = new MemorySourceDatabase([fix.catalog], fix.rows),
  ): Promise<{ workDir: string; files: StagedFile[] }> {
    const writer = makeWriter();
    return run.stage(fix.catalog.name, (work) => writer.write(work, source, extracts, options));
  }

  await t.step(
    "write() round-trips every logical type and edge value exactly",
    () =>
      withRun(async (run) => {
        const fix = fixture(SCHEMA);
        const { files } = await writeDataset(run, fix);
        assert.ok(files.length > 0, "expected at least one staged file");
        for (const file of files) {
          assert.ok(file.path.startsWith("data/outputs/"), `${file.path} is outside data/outputs/`);
        }
        assert.deepEqual(new Set(files.map((f) => f.path)).size, files.length, "duplicate paths");
        const read = await readBack(run.dir, run.files);
        const want = expected(fix);
        for (const [key, rows] of want) {
          const got = read.get(key);
          assert.ok(got !== undefined, `table ${key} was not staged`);
          assert.equal(got.length, rows.length, `row count of ${key}`);
          for (let r = 0; r < rows.length; r++) {
            assert.deepEqual(got[r], rows[r], `${key} row ${r + 1}`);
          }
        }
        assert.deepEqual([...read.keys()].sort(), [...want.keys()].sort());
      }),
  );

  await t.step(
    "write() reports each file's SHA-512 and size as they are on disk",
    () =>
      withRun(async (run) => {
        const { workDir, files } = await writeDataset(run, fixture(SCHEMA));
        for (const file of files) {
          const data = await readFile(join(run.dir, file.path));
          assert.equal(file.bytes, data.length, `size of ${file.path}`);
          assert.match(file.sha512, /^[0-9a-f]{128}$/);
          assert.equal(file.sha512, createHash("sha512").update(data).digest("hex"));
        }
        assert.ok(workDir.length > 0);
      }),
  );

  await t.step(
    "write() stages an empty table as a table without rows",
    () =>
      withRun(async (run) => {
        const fix = fixture(SCHEMA);
        const empty = tableExtracts(fix.catalog).filter((e) => e.table.name === "empty_table");
        await writeDataset(run, fix, empty);
        const read = await readBack(run.dir, run.files);
        assert.deepEqual(read, new Map([[`${SCHEMA}.empty_table`, []]]));
      }),
  );

  await t.step(
    "write() stages only the selected columns, in catalogue order",
    () =>
      withRun(async (run) => {
        const fix = fixture(SCHEMA);
        const visits = fix.catalog.tables.find((t) => t.name === "visits")!;
        const wanted = new Set(["notes", "visit_no"]);
        const extract: TableExtract = {
          schema: SCHEMA,
          table: {
            ...visits,
            columns: visits.columns.filter((c) => wanted.has(c.name)),
            primaryKey: [],
          },
        };
        await writeDataset(run, fix, [extract]);
        const read = await readBack(run.dir, run.files);
        assert.deepEqual(
          read,
          new Map([[`${SCHEMA}.visits`, [["2", "second"], ["1", null], ["1", "other patient"]]]]),
        );
      }),
  );

  await t.step(
    "write() rejects when the source fails part way, leaving staged files alone",
    () =>
      withRun(async (run) => {
        await writeDataset(run, smallFixture(OTHER_SCHEMA, "kept"));
        const fix = fixture(SCHEMA);
        const source = new MemorySourceDatabase([fix.catalog], fix.rows);
        source.failAfterRows(MANY_ROWS / 2);
        const many = tableExtracts(fix.catalog).filter((e) => e.table.name === "many_rows");
        await assert.rejects(writeDataset(run, fix, many, source), SourceUnavailableError);
        const read = await readBack(run.dir, run.files);
        assert.deepEqual(read, expected(smallFixture(OTHER_SCHEMA, "kept")));
      }),
  );

  await t.step(
    "write() re-stages one dataset and keeps the run's other datasets",
    () =>
      withRun(async (run) => {
        const first = fixture(SCHEMA);
        const other = smallFixture(OTHER_SCHEMA, "other");
        await writeDataset(run, first);
        await writeDataset(run, other);
        const both = await readBack(run.dir, run.files);
        assert.deepEqual(both, new Map([...expected(first), ...expected(other)]));

        // The first dataset again, now with one table and different rows: its old tables go, the other
        // dataset stays.
        const again = smallFixture(SCHEMA, "again");
        await writeDataset(run, again);
        const read = await readBack(run.dir, run.files);
        assert.deepEqual(read, new Map([...expected(again), ...expected(other)]));
      }),
  );

  await t.step(
    "write() stops in the middle of a read when its signal aborts, and rejects with its reason",
    () =>
      withRun(async (run) => {
        await writeDataset(run, smallFixture(OTHER_SCHEMA, "kept"));
        const fix = fixture(SCHEMA);
        const source = new StallingReader(new MemorySourceDatabase([fix.catalog], fix.rows));
        const controller = new AbortController();
        const reason = new Error("stopped by the test");
        const writer = makeWriter();
        const writing = run.stage(SCHEMA, (work) =>
          writer.write(work, source, tableExtracts(fix.catalog), {
            ...options,
            signal: controller.signal,
          }));
        try {
          await source.stalled; // one table has sent a batch and now waits forever
          controller.abort(reason);
          await assert.rejects(writing, (e) =>
            e === reason);
        } finally {
          source.release();
        }
        const read = await readBack(run.dir, run.files);
        assert.deepEqual(read, expected(smallFixture(OTHER_SCHEMA, "kept")));
      }),
  );

  await t.step(
    "write() reports each table done exactly once, with its own file's SHA-512 or null",
    () =>
      withRun(async (run) => {
        const fix = fixture(SCHEMA);
        const reports: ProgressReport[] = [];
        const writer = makeWriter();
        const source = new MemorySourceDatabase([fix.catalog], fix.rows);
        const extracts = tableExtracts(fix.catalog);
        const { files } = await run.stage(SCHEMA, (work) =>
          writer.write(work, source, extracts, {
            ...options,
            onProgress: (p) => reports.push(p),
          }));
        const done = reports.filter((p) => p.done !== undefined);
        assert.deepEqual(
          done.map((p) => p.table).sort(),
          extracts.map((e) => e.table.name).sort(),
        );
        for (const report of done) {
          assert.equal(report.done!.reused, false);
          if (report.done!.sha512 === null) continue;
          const file = files.find((f) => f.path === csvPayloadPath(SCHEMA, report.table));
          assert.ok(file !== undefined, `no file of its own for ${report.table}`);
          assert.equal(report.done!.sha512, file.sha512, `SHA-512 of ${report.table}`);
          assert.equal(report.bytes, file.bytes, `bytes of ${report.table}`);
        }
      }),
  );

  await t.step(
    "write() keeps a left-over with the recorded SHA-512 unread, and reads a mismatched one again",
    () =>
      withRun(async (run) => {
        const fix = fixture(SCHEMA);
        const extracts = tableExtracts(fix.catalog);
        const first: ProgressReport[] = [];
        const { files: uninterrupted } = await run.stage(SCHEMA, (work) =>
          makeWriter().write(work, new MemorySourceDatabase([fix.catalog], fix.rows), extracts, {
            ...options,
            onProgress: (p) =>
              first.push(p),
          }));
        const recorded = new Map(
          first.filter((p) =>
            p.done?.sha512 != null
          ).map((p) => [p.table, p.done!.sha512!]),
        );
        // What an interrupted stage left: `visits` intact, `texts` changed since it was recorded.
        for (const name of ["visits", "texts", "many_rows"]) {
          const path = csvPayloadPath(SCHEMA, name);
          if (!uninterrupted.some((f) => f.path === path)) continue;
          await mkdir(dirname(join(run.leftOverDir, path)), { recursive: true });
          await copyFile(join(run.dir, path), join(run.leftOverDir, path));
        }
        const texts = join(run.leftOverDir, csvPayloadPath(SCHEMA, "texts"));
        if (recorded.has("texts")) await Deno.writeTextFile(texts, "id,t\n", { append: true });
        const reuse = new Map([...recorded].filter(([table]) => table !== "many_rows"));

        const source = new CountingReader(new MemorySourceDatabase([fix.catalog], fix.rows));
        const reports: ProgressReport[] = [];
        const { files } = await run.stage(SCHEMA, (work) =>
          makeWriter().write(work, source, extracts, {
            ...options,
            reuse,
            onProgress: (p) =>
              reports.push(p),
          }));
        const reused = reports.filter((p) =>
          p.done?.reused
        ).map((p) => p.table);
        if (recorded.size === 0) {
          // A writer without per-table checksums reads everything again.
          assert.deepEqual(reused, []);
          assert.deepEqual(source.tablesRead().sort(), extracts.map((e) => e.table.name).sort());
          assert.deepEqual(await readBack(run.dir, run.files), expected(fix));
          return;
        }
        assert.deepEqual(files, uninterrupted, "the same files as a stage without left-overs");
        assert.deepEqual(reused, ["visits"]);
        assert.deepEqual(
          source.tablesRead().sort(),
          extracts.map((e) => e.table.name).filter((n) => n !== "visits").sort(),
        );
        const read = await readBack(run.dir, run.files);
        assert.deepEqual(read, expected(fix));
      }),
  );
}

/** A reader that counts which tables were read. */
class CountingReader implements TableReader {
  readonly #reads: string[] = [];

  constructor(readonly inner: TableReader) {}

  readRows(extract: TableExtract, options?: WriteOptions): AsyncIterable<CanonicalRow[]> {
    this.#reads.push(extract.table.name);
    return this.inner.readRows(extract, options);
  }

  /** The tables read so far, once each. */
  tablesRead(): string[] {
    return [...new Set(this.#reads)];
  }
}

/** A reader whose tables each send one batch, then wait until released (and then fail). */
class StallingReader implements TableReader {
  readonly #stalled = Promise.withResolvers<void>();
  readonly #released = Promise.withResolvers<void>();

  constructor(readonly inner: TableReader) {}

  /** Resolves once some table has sent its first batch and is waiting. */
  get stalled(): Promise<void> {
    return this.#stalled.promise;
  }

  /** Lets the waiting reads end (with an error), so the test leaves nothing pending. */
  release(): void {
    this.#released.resolve();
  }

  async *readRows(extract: TableExtract, options?: WriteOptions): AsyncIterable<CanonicalRow[]> {
    for await (const batch of this.inner.readRows(extract, options)) {
      yield batch;
      this.#stalled.resolve();
      await this.#released.promise;
      throw new Error("released after the test");
    }
    this.#stalled.resolve();
    await this.#released.promise;
  }
}

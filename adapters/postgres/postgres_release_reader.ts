/**
 * Reads the PostgreSQL destination's published tables page by page (`ports/release_reader.ts`).
 *
 * **Published means granted.** A run's tables are found through the registry
 * (`cr8tor_publisher.datasets`, exact project name and start time), and a table is readable only while
 * the read-only role (OPAL's) may read it: `grantReadAccess` at publish is what makes it so, a reload
 * drops the grants with the old tables (the new rows stay hidden until the next publish), and a
 * revocation drops the schemas and the registry rows. The check is made again inside every page's
 * statement, on the very relation the statement reads (a one-time filter that fails the statement with
 * a marker), so a page never shows a table loaded but not yet published.
 *
 * **Keyset pages.** A table with a primary key is read `where (key) > (cursor's key) order by key
 * limit n + 1`, on its index; the values are the canonical text of the PostgreSQL dialect
 * (`postgresSelectList`, with the canonical session settings), the key values in the cursor are that
 * text cast back to the column's type. Paging survives a republish: the next page starts after the last
 * key read, in whatever the table holds then. A table without a key is read by `ctid` (a TID range
 * scan), bound to the table's oid and file node: after a republish (or a `VACUUM FULL`) the cursor is
 * refused with `release_changed`.
 *
 * **Bounded pages.** Rows arrive through a cursor of {@link FETCH_ROWS} rows, and the page stops at its
 * limit or its character cap, so a page of wide rows holds about the cap, never `limit` times the widest
 * row.
 *
 * @module
 */
import postgres, { type Sql } from "postgres";
import type { TableExtract } from "../../domain/catalog.ts";
import type { LogicalType } from "../../domain/logical_type.ts";
import {
  InvalidCursorError,
  MAX_PAGE_CHARS,
  pageIsFull,
  type ReadPosition,
  type ReadValue,
  type ReleaseTable,
  rowChars,
} from "../../domain/release_read.ts";
import type { RunRef } from "../../domain/staging_layout.ts";
import { parseStagedTables } from "../../domain/staging_manifest.ts";
import { JsonRowsWriter, lastRecordOf } from "../../domain/csv_json.ts";
import { DestinationUnavailableError } from "../../ports/destination_database.ts";
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
import { AppError } from "../../domain/errors.ts";
import { destinationFailure, isSqlError } from "./postgres_destination_errors.ts";
import { REGISTRY_SCHEMA, REGISTRY_TABLE } from "./postgres_destination.ts";
import {
  postgresLogicalType,
  postgresSelectList,
  quotePostgresIdentifier,
} from "./postgres_dialect.ts";
import {
  eachCopyRow,
  postgresClientOptions,
  type PostgresConnectionOptions,
} from "./postgres_source_database.ts";

/** Rows fetched per round trip of a page's cursor. */
export const FETCH_ROWS = 2_500;

/** How long a page read ahead is kept for the next request, and how many are kept at most. */
const AHEAD_MS = 10_000;
const MAX_AHEAD = 4;

/** Rows a block is taken to hold when the table has no statistics (a window then grows as needed). */
const ROWS_PER_BLOCK_GUESS = 50;

/** The buffer a table's first page starts with (it doubles when short). */
const FIRST_PAGE_BYTES = 1 << 20;

/** What identifies a page read ahead. */
function prefetchKey(run: RunRef, request: ReadPageRequest, orientation: ReadOrientation): string {
  return JSON.stringify([
    run.project,
    run.startTime,
    request.dataset,
    request.table,
    request.limit,
    request.maxChars ?? null,
    orientation,
    request.after,
  ]);
}

/** The markers a page's statement fails with when its table is not (or no longer) what it read. */
const NOT_PUBLISHED_MARKER = "cr8tor_not_published";
const CHANGED_MARKER = "cr8tor_release_changed";

/**
 * A boolean expression that fails the statement with `marker` in its message when evaluated. It holds a
 * stable function call, so that the planner cannot fold it (and fail every statement) ahead of time.
 */
function failWith(marker: string): string {
  return `('${marker}' || pg_catalog.pg_backend_pid()::text)::int4 = 0`;
}

/** How to reach the destination, and which role's grants say what is published. */
export interface PostgresReleaseReaderOptions extends PostgresConnectionOptions {
  /** The read-only role OPAL reads with (`DESTINATION_POSTGRESQL_OPAL_READONLY_USERNAME`). */
  readonly readOnlyRole: string;
  /** Connections in the pool (default 4). */
  readonly maxConnections?: number;
}

/** A published table as the catalogue describes it. */
interface TableFacts {
  readonly dataset: string;
  readonly schema: string;
  readonly name: string;
  readonly oid: string;
  readonly filenode: string;
  readonly columns: readonly {
    readonly name: string;
    readonly type: string;
    readonly logicalType: LogicalType;
    readonly description: string | null;
  }[];
  readonly key: readonly string[];
  /** The table's blocks now (a published table never changes in place). */
  readonly blocks: number;
  /** About how many rows a block holds, from the statistics (a guess when there are none). */
  readonly rowsPerBlock: number;
}

/** What one page reads (see `#plan`). */
interface PagePlan {
  readonly facts: TableFacts;
  readonly keyed: boolean;
  /** The key columns' indexes among the columns. */
  readonly keyIndexes: readonly number[];
  /** The columns' canonical text, named as themselves, for the row protocol. */
  readonly selectList: string;
  /** The same for `COPY` (no cast where the type's output is the canonical text). */
  readonly copySelectList: string;
  /** `relation r where ... order by ... limit n + 1` (a table with a key; see `#readByCtid` for one without). */
  readonly from: string;
  /** The table, schema-qualified and quoted. */
  readonly relation: string;
  /** The condition that fails the statement when the table is not (or no longer) what it read. */
  readonly guard: string;
}

/** The parts as one buffer (the only part itself when there is one). */
function concat(parts: readonly Uint8Array[], size: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  if (parts.length === 0) return new Uint8Array(0);
  const out = new Uint8Array(size);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/**
 * A SQL string literal (the session has `standard_conforming_strings` on).
 *
 * @throws {InvalidCursorError} for text PostgreSQL cannot hold (a NUL character).
 */
function sqlLiteral(text: string): string {
  if (text.includes("\0")) throw new InvalidCursorError("holds a value no table can have");
  return `'${text.replaceAll("'", "''")}'`;
}

interface FactsRow {
  dataset: string;
  schema: string;
  name: string;
  oid: string;
  filenode: string;
  released: unknown;
  columns: { name: string; type: string; typname: string; description: string | null }[];
  key: string[] | null;
  blocks: string;
  pages: number;
  tuples: number;
}

/** The published tables of a PostgreSQL destination, read with a pool of its own. */
export class PostgresReleaseReader implements ReleaseReader, AsyncDisposable {
  readonly #sql: Sql;
  readonly #options: PostgresReleaseReaderOptions;
  /** Pages read ahead, by run, table, limit, orientation and position (see {@link readPageJson}). */
  readonly #ahead = new Map<string, { version: string; page: Promise<JsonPage>; at: number }>();
  /** The JSON size of the last page read, by table, orientation and limit: the next one's first guess. */
  readonly #pageBytes = new Map<string, number>();

  /** Connects lazily: nothing is sent before the first call. */
  constructor(options: PostgresReleaseReaderOptions) {
    this.#options = options;
    const base = postgresClientOptions(options);
    this.#sql = postgres({
      ...base,
      max: options.maxConnections ?? 4,
      fetch_types: false,
      // Literals in page statements rely on it (a COPY takes no parameters).
      connection: { ...base.connection, standard_conforming_strings: "on" },
    });
  }

  async listTables(run: RunRef): Promise<ReleaseTable[]> {
    const tables = await this.#facts(run, undefined);
    if (tables.length === 0) throw new ReleaseNotReadableError(run);
    return tables.map((t) => ({
      name: t.name,
      dataset: t.dataset,
      columns: t.columns.map(({ name, type, description }) => ({ name, type, description })),
      key: [...t.key],
    }));
  }

  async readPage(run: RunRef, request: ReadPageRequest): Promise<ReadPage> {
    const plan = await this.#plan(run, request);
    if (!plan.keyed) return await this.#readByCtid(run, request, plan);
    const { facts } = plan;
    const rows: ReadValue[][] = [];
    let chars = 0;
    let more = false;
    const maxChars = request.maxChars ?? MAX_PAGE_CHARS;
    try {
      const query = `select ${plan.selectList} from ${plan.from}`;
      const cursor = this.#sql.unsafe<ReadValue[][]>(query).values().cursor(FETCH_ROWS);
      for await (const batch of cursor) {
        for (const row of batch as unknown as ReadValue[][]) {
          if (pageIsFull(rows.length, chars, request.limit, maxChars)) {
            more = true;
            break;
          }
          rows.push(row);
          chars += rowChars(row);
        }
        if (more) break;
      }
    } catch (e) {
      throw this.#failure(e, run, request);
    }
    const last = rows.at(-1);
    const next: ReadPosition | null = more && last !== undefined
      ? { kind: "key", values: plan.keyIndexes.map((i) => last[i]!) }
      : null;
    return { columns: facts.columns.map(({ name, type }) => ({ name, type })), rows, next };
  }

  /**
   * A page of a table without a key, in `ctid` order, a window of blocks at a time:
   * `ctid > <cursor's> and ctid < '(<block>,0)' order by ctid limit n`, a TID range scan of the window's
   * blocks and a sort of its rows only. One statement `ctid > <cursor's> order by ctid limit n` would
   * scan and sort every row after the cursor for every page (about 120 ms per page 94 % into a 1M-row
   * table, well over a second near its start). A window spans as many blocks as the statistics say hold
   * the page's rows, and doubles when one comes back short (deleted rows, wide rows); the last window
   * has no upper bound.
   */
  async #readByCtid(run: RunRef, request: ReadPageRequest, plan: PagePlan): Promise<ReadPage> {
    const { facts } = plan;
    const width = facts.columns.length;
    const rows: ReadValue[][] = [];
    let chars = 0;
    let more = false;
    let lastCtid: string | undefined;
    const maxChars = request.maxChars ?? MAX_PAGE_CHARS;
    // `#planOf` checked the cursor's form and version.
    const after = request.after?.kind === "row" ? request.after.after : undefined;
    let lower = after === undefined ? "" : ` and r.ctid > ${sqlLiteral(after)}::tid`;
    let block = after === undefined ? 0 : Number(/^\((\d+),/.exec(after)![1]);
    let span = Math.ceil((request.limit + 1) / Math.max(facts.rowsPerBlock, 1) * 1.25) + 1;
    try {
      windows: for (;;) {
        const end = block + span;
        const last = end >= facts.blocks;
        const need = request.limit + 1 - rows.length;
        const query = `select ${plan.selectList}, r.ctid::text from ${plan.relation} r ` +
          `where ${plan.guard}${lower}${last ? "" : ` and r.ctid < '(${end},0)'::tid`} ` +
          `order by r.ctid limit ${need}`;
        let got = 0;
        const cursor = this.#sql.unsafe<ReadValue[][]>(query).values().cursor(FETCH_ROWS);
        for await (const batch of cursor) {
          for (const row of batch as unknown as ReadValue[][]) {
            got++;
            if (pageIsFull(rows.length, chars, request.limit, maxChars)) {
              more = true;
              break windows;
            }
            lastCtid = row[width] as string;
            const values = row.slice(0, width);
            rows.push(values);
            chars += rowChars(values);
          }
        }
        if (last) break;
        lower = ` and r.ctid >= '(${end},0)'::tid`;
        block = end;
        if (got < need) span *= 2;
      }
    } catch (e) {
      throw this.#failure(e, run, request);
    }
    const next: ReadPosition | null = more && lastCtid !== undefined
      ? { kind: "row", version: `${facts.oid}:${facts.filenode}`, after: lastCtid }
      : null;
    return { columns: facts.columns.map(({ name, type }) => ({ name, type })), rows, next };
  }

  /**
   * The page straight from `COPY (...) TO STDOUT` in the text format, the statement `psql \copy` runs
   * (with the keyset condition and `limit n + 1`; columns whose type's output is their canonical text
   * without a cast), each row transcoded to JSON byte by byte as it arrives, into one buffer for the page
   * (`domain/csv_json.ts`), so the transcoding overlaps the server's work and no value becomes a
   * JavaScript string. Once the page is full (its limit, or its size cap) the rest is drained, not kept.
   * Tables with a key only; a table without one is read by {@link readPage}.
   *
   * **Read ahead.** When a page has a next one, that page is read at once, while this one is sent, and
   * kept (at most {@link MAX_AHEAD}, for {@link AHEAD_MS}) for the request that names its cursor. That
   * request still checks first that the table is published, and uses the page read ahead only when it
   * was read from the very table published now (same oid and file node: a published table never changes
   * in place; a republish is a new table); otherwise it reads afresh.
   */
  async readPageJson(
    run: RunRef,
    request: ReadPageRequest,
    orientation: ReadOrientation,
  ): Promise<JsonPage | undefined> {
    // Checked now, whether or not the page was read ahead: a revoked or unpublished table is refused.
    const facts = await this.#published(run, request);
    if (facts.key.length === 0) return undefined;
    const key = prefetchKey(run, request, orientation);
    const ahead = this.#ahead.get(key);
    this.#ahead.delete(key);
    let page: JsonPage | undefined;
    if (ahead !== undefined && ahead.version === `${facts.oid}:${facts.filenode}`) {
      // Read ahead from this very table (its oid): a published table never changes in place.
      page = await ahead.page.catch(() => undefined);
    }
    page ??= await this.#jsonPage(run, this.#planOf(facts, request), request, orientation);
    if (page.next !== null) {
      // The next page is read while this one is sent: it is kept briefly for the cursor's request.
      const nextRequest = { ...request, after: page.next };
      const reading = this.#jsonPage(
        run,
        this.#planOf(facts, nextRequest),
        nextRequest,
        orientation,
      );
      reading.catch(() => {});
      this.#ahead.set(prefetchKey(run, nextRequest, orientation), {
        version: `${facts.oid}:${facts.filenode}`,
        page: reading,
        at: Date.now(),
      });
      this.#trimAhead();
    }
    return page;
  }

  /** Drops pages read ahead that are too old or too many. */
  #trimAhead(): void {
    const now = Date.now();
    for (const [key, entry] of this.#ahead) {
      if (now - entry.at > AHEAD_MS || this.#ahead.size > MAX_AHEAD) this.#ahead.delete(key);
    }
  }

  /** One page as JSON (see {@link readPageJson}). */
  async #jsonPage(
    run: RunRef,
    plan: PagePlan,
    request: ReadPageRequest,
    orientation: ReadOrientation,
  ): Promise<JsonPage> {
    const { facts } = plan;
    const maxChars = request.maxChars ?? MAX_PAGE_CHARS;
    // The text format: PostgreSQL writes it with less work than CSV (no quoting decision per value).
    const query = `copy (select ${plan.copySelectList} from ${plan.from}) to stdout`;
    // Sized as the last page of this table and shape was, so that a page is usually one buffer.
    const sizeKey = `${facts.oid}:${orientation}:${request.limit}`;
    const writer = new JsonRowsWriter({
      names: orientation === "records" ? facts.columns.map((c) => c.name) : undefined,
      capacity: this.#pageBytes.get(sizeKey) ?? FIRST_PAGE_BYTES,
    });
    let copyBytes = 0;
    // PostgreSQL sends one row per CopyData message; a record cut by a message end is joined anyway.
    let pending: Uint8Array | undefined;
    // The input holding the last record taken, and where it is in it (no view made per row).
    let last: { bytes: Uint8Array; start: number; end: number } | undefined;
    let full = false;
    let more = false;
    // One object for every row: a page's rows make no garbage but what postgres.js makes.
    const limits = { maxRecords: 0, maxBytes: 0, final: false };
    const take = (row: Uint8Array) => {
      if (full) {
        more = true;
        return;
      }
      const bytes = pending === undefined
        ? row
        : concat([pending, row], pending.length + row.length);
      limits.maxRecords = request.limit - writer.records;
      limits.maxBytes = writer.records === 0 ? maxChars : Math.max(1, maxChars - copyBytes);
      const end = writer.appendCopyText(bytes, 0, limits) > 0 ? writer.end : 0;
      if (end > 0) {
        copyBytes += end;
        last ??= { bytes, start: 0, end: 0 };
        last.bytes = bytes;
        last.start = writer.lastStart;
        last.end = end;
      }
      pending = end < bytes.length ? bytes.subarray(end) : undefined;
      if (writer.records >= request.limit || (writer.records > 0 && copyBytes >= maxChars)) {
        full = true;
        more = pending !== undefined;
      }
    };
    try {
      await eachCopyRow(await this.#sql.unsafe(query).readable(), take);
      if (pending !== undefined) {
        throw new SyntaxError("Cannot transcode COPY text: the COPY ended inside a record");
      }
    } catch (e) {
      throw this.#failure(e, run, request);
    }
    const json = writer.json;
    this.#pageBytes.set(sizeKey, json.length + (json.length >> 4));
    if (this.#pageBytes.size > MAX_AHEAD * 4) this.#pageBytes.clear();
    const values = more && last !== undefined
      ? lastRecordOf(last.bytes, { records: 1, end: last.end, lastStart: last.start }, "copy-text")
      : undefined;
    return {
      columns: facts.columns.map(({ name, type }) => ({ name, type })),
      rowCount: writer.records,
      json,
      next: values === undefined
        ? null
        : { kind: "key", values: plan.keyIndexes.map((i) => values[i]!) },
    };
  }

  /**
   * What a page reads: the table's facts, its canonical select list, and the `from ... where ... order
   * by ... limit` part with the grant guard and the keyset condition, every value a literal (a COPY
   * takes no parameters).
   */
  async #plan(run: RunRef, request: ReadPageRequest): Promise<PagePlan> {
    return this.#planOf(await this.#published(run, request), request);
  }

  /**
   * The table a page reads, as published now.
   *
   * @throws {ReleaseNotReadableError} when nothing of the run is published.
   * @throws {ReleaseTableNotFoundError} when the run published no such table.
   */
  async #published(run: RunRef, request: ReadPageRequest): Promise<TableFacts> {
    const tables = await this.#facts(run, request);
    if (tables.length === 0) {
      // Either nothing of the run is published, or not this table.
      if ((await this.#facts(run, undefined)).length === 0) throw new ReleaseNotReadableError(run);
      throw new ReleaseTableNotFoundError(request.dataset, request.table);
    }
    return tables[0]!;
  }

  /** See {@link #plan}: the statement parts for `facts`. */
  #planOf(facts: TableFacts, request: ReadPageRequest): PagePlan {
    const relation = `${quotePostgresIdentifier(facts.schema)}.${
      quotePostgresIdentifier(facts.name)
    }`;
    const extract: TableExtract = {
      schema: facts.schema,
      table: {
        name: facts.name,
        kind: "table",
        description: null,
        primaryKey: [...facts.key],
        columns: facts.columns.map((c) => ({
          name: c.name,
          dataType: c.type,
          logicalType: c.logicalType,
          nullable: true,
          description: null,
        })),
      },
    };
    const keyed = facts.key.length > 0;
    const guards = [
      `case when pg_catalog.has_table_privilege(${sqlLiteral(this.#options.readOnlyRole)}, ` +
      `${sqlLiteral(relation)}::regclass, 'SELECT') then true ` +
      `else ${failWith(NOT_PUBLISHED_MARKER)} end`,
    ];
    let where = "";
    let order: string;
    const after = request.after;
    const keyIndexes = facts.key.map((k) => facts.columns.findIndex((c) => c.name === k));
    if (keyed) {
      const keyColumns = keyIndexes.map((i) => facts.columns[i]!);
      // Qualified: a bare name in ORDER BY would be the select list's text of the column.
      order = keyColumns.map((c) => `r.${quotePostgresIdentifier(c.name)}`).join(", ");
      if (after !== null) {
        if (after.kind !== "key" || after.values.length !== keyColumns.length) {
          throw new InvalidCursorError("does not fit this table's key");
        }
        const casts = keyColumns.map((c, i) => `${sqlLiteral(after.values[i]!)}::${c.type}`);
        where = ` and (${order}) > (${casts.join(", ")})`;
      }
    } else {
      order = "r.ctid";
      if (after !== null) {
        if (after.kind !== "row" || !/^\(\d{1,10},\d{1,5}\)$/.test(after.after)) {
          throw new InvalidCursorError("is not a row position of this table");
        }
        const version = `${facts.oid}:${facts.filenode}`;
        if (after.version !== version) {
          throw new ReleaseChangedError(request.dataset, request.table);
        }
        guards.push(
          `case when ${sqlLiteral(relation)}::regclass::oid::text || ':' || ` +
            `pg_catalog.pg_relation_filenode(${sqlLiteral(relation)}::regclass)::text = ` +
            `${sqlLiteral(version)} then true else ${failWith(CHANGED_MARKER)} end`,
        );
        // The position itself is read by windows (`#readByCtid`).
      }
    }
    return {
      facts,
      keyed,
      keyIndexes,
      selectList: postgresSelectList(extract),
      copySelectList: postgresSelectList(extract, { via: "copy" }),
      from: `${relation} r where (select ${guards.join(" and ")})${where} ` +
        `order by ${order} limit ${request.limit + 1}`,
      relation,
      guard: `(select ${guards.join(" and ")})`,
    };
  }

  /** Ends every connection; safe to call twice. */
  async close(): Promise<void> {
    this.#ahead.clear();
    await this.#sql.end({ timeout: 5 });
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** The run's published tables (or the one `only` names), from the registry and the catalogue. */
  async #facts(
    run: RunRef,
    only: { dataset: string; table: string } | undefined,
  ): Promise<TableFacts[]> {
    const sql = this.#sql;
    let rows: FactsRow[];
    try {
      rows = await sql.unsafe<FactsRow[]>(
        `
        select d.schema_name as dataset, d.destination_schema as "schema", t.name as "name",
               c.oid::text as oid, c.relfilenode::text as filenode, d.released,
               (pg_catalog.pg_relation_size(c.oid) /
                  pg_catalog.current_setting('block_size')::int8)::text as blocks,
               c.relpages as pages, c.reltuples::float8 as tuples,
               (select json_agg(json_build_object(
                         'name', a.attname,
                         'type', pg_catalog.format_type(a.atttypid, a.atttypmod),
                         'typname', coalesce(bt.typname, ty.typname),
                         'description', pg_catalog.col_description(c.oid, a.attnum))
                       order by a.attnum)
                  from pg_catalog.pg_attribute a
                  join pg_catalog.pg_type ty on ty.oid = a.atttypid
                  left join pg_catalog.pg_type bt on ty.typtype = 'd' and bt.oid = ty.typbasetype
                 where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped) as columns,
               (select json_agg(a.attname::text order by k.ord)
                  from pg_catalog.pg_index i
                  cross join lateral unnest(i.indkey) with ordinality as k(attnum, ord)
                  join pg_catalog.pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
                 where i.indrelid = c.oid and i.indisprimary) as key
          from ${quotePostgresIdentifier(REGISTRY_SCHEMA)}.${
          quotePostgresIdentifier(REGISTRY_TABLE)
        } d
         cross join lateral unnest(d.tables) as t(name)
          join pg_catalog.pg_class c
            on c.oid = to_regclass(format('%I.%I', d.destination_schema, t.name))
         where d.project_name = $1 and d.project_start_time = $2
           and ($3::text is null or (d.schema_name = $3 and t.name = $4))
           and pg_catalog.has_schema_privilege($5, c.relnamespace, 'USAGE')
           and pg_catalog.has_table_privilege($5, c.oid, 'SELECT')
         order by d.schema_name collate "C", t.name collate "C"`,
        [
          run.project,
          run.startTime,
          only?.dataset ?? null,
          only?.table ?? null,
          this.#options.readOnlyRole,
        ] as never,
      );
    } catch (e) {
      // No registry yet: nothing was ever loaded here.
      if (isSqlError(e) && (e as { code?: string }).code === "42P01") return [];
      throw destinationFailure(e, "Cannot read the published tables", this.#options.password);
    }
    return rows.map((r) => {
      const released = parseStagedTables(r.released)?.find((t) => t.name === r.name);
      return {
        dataset: r.dataset,
        schema: r.schema,
        name: r.name,
        oid: r.oid,
        filenode: r.filenode,
        columns: (r.columns ?? []).map((c) => ({
          name: c.name,
          type: c.type,
          logicalType: postgresLogicalType(c.typname, c.type),
          description: released?.columns.find((rc) => rc.name === c.name)?.description ??
            c.description,
        })),
        key: r.key ?? [],
        blocks: Number(r.blocks),
        rowsPerBlock: r.pages > 0 && r.tuples > 0 ? r.tuples / r.pages : ROWS_PER_BLOCK_GUESS,
      };
    });
  }

  /** A page's failure as the port's error. */
  #failure(e: unknown, run: RunRef, request: ReadPageRequest): unknown {
    if (e instanceof AppError) return e;
    const message = (e as { message?: unknown })?.message;
    if (isSqlError(e) && typeof message === "string") {
      if (message.includes(NOT_PUBLISHED_MARKER)) return new ReleaseNotReadableError(run);
      if (message.includes(CHANGED_MARKER)) {
        return new ReleaseChangedError(request.dataset, request.table);
      }
      const code = (e as { code?: string }).code;
      // The table was replaced between the lookup and the read (columns changed, or it is gone).
      if (code === "42P01" || code === "42703") {
        return new ReleaseChangedError(request.dataset, request.table);
      }
      // A key value that does not cast back to the key's type was never issued for this table.
      if (code === "22P02" || code === "22007" || code === "22008" || code === "22003") {
        return new InvalidCursorError("does not fit this table's key");
      }
    }
    if (e instanceof DestinationUnavailableError) return e;
    return destinationFailure(e, "Cannot read a published table", this.#options.password);
  }
}

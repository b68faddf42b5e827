/**
 * A stand-in for the publish service's internal read routes (`docs/data-api.md`), over tables held in
 * memory, for the gateway's data API tests. It implements exactly the interface the real one does:
 *
 * - `POST /data-publish/read/tables` `{project_name, project_start_time, destination: {type, name}}` →
 *   `{"status":"success","payload":{"tables":[{name, dataset, columns:[{name,type,description}], key}]}}`,
 *   404 `release_not_published` when nothing is published for the run;
 * - `POST /data-publish/read/rows` (the same fields plus `dataset`, `table`, `limit`, `cursor`,
 *   `orientation`, `next_base`) → one page in key order, keyset-paged: the rows whose key is after the
 *   cursor's, whatever was added or removed since; `next` = `next_base` + the encoded cursor, or null on the
 *   last page; headers `x-rows-returned`, `Link` (rel next) and `x-hawk-payload-hash`. 400 `invalid_cursor`, 404 `table_not_found`, 422
 *   `invalid_request` for a body out of the schema (`limit` outside 1..10000 included);
 * - a table without a key (`key: []`, as every CSV file is) pages in row order, its cursor bound to the
 *   table's version: after {@link FakeDataRead.republish} such a cursor is 409 `release_changed`, as the
 *   real service answers a cursor into a replaced CSV file or a key-less table a republish replaced.
 *
 * Tests change a table between pages ({@link FakeDataRead.table}) to check the gateway's paging.
 *
 * @module
 */
import { type Context, Hono } from "hono";
import { hawkPayloadHash } from "../../adapters/hawk/hawk_request_verifier.ts";

/** One published table. */
export interface FakeReadTable {
  readonly dataset: string;
  readonly name: string;
  readonly columns: readonly { name: string; type: string; description: string | null }[];
  /** The key columns, in order; rows are paged by them. */
  readonly key: readonly string[];
  /** Each row's values in column order, canonical CSV text, null for NULL. */
  rows: (string | null)[][];
  /** Bumped by {@link FakeDataRead.republish}: a key-less table's cursors name it. */
  version?: number;
}

/** The project run a request names. */
export interface FakeReadRun {
  readonly project_name: string;
  readonly project_start_time: string;
  readonly destination: { readonly type: string; readonly name: string };
}

function runKey(run: FakeReadRun): string {
  return JSON.stringify([
    run.project_name,
    run.project_start_time,
    run.destination.type,
    run.destination.name,
  ]);
}

function envelope(code: string, detail: string, requestId: string) {
  return { status: "error", payload: { detail, code, request_id: requestId } };
}

/** The stand-in: publish tables, then serve its app (`app()`) with the publish service's key. */
export class FakeDataRead {
  readonly #key: string;
  readonly #runs = new Map<string, FakeReadTable[]>();
  /** Every body the read routes were sent, in order (`path` is `tables` or `rows`). */
  readonly calls: { path: string; body: Record<string, unknown> }[] = [];

  constructor(apiKey: string) {
    this.#key = apiKey;
  }

  /** Publishes `tables` for a project run (replacing what it had). */
  publish(run: FakeReadRun, tables: FakeReadTable[]): void {
    this.#runs.set(runKey(run), tables);
  }

  /** A published table, to change between pages. */
  table(run: FakeReadRun, dataset: string, name: string): FakeReadTable {
    const table = this.#runs.get(runKey(run))?.find((t) =>
      t.dataset === dataset && t.name === name
    );
    if (table === undefined) throw new Error(`no table ${dataset}.${name}`);
    return table;
  }

  /**
   * Republishes a table with `rows`: keyed paging goes on after the last key read; a key-less table's
   * cursors now get 409 `release_changed`.
   */
  republish(run: FakeReadRun, dataset: string, name: string, rows: (string | null)[][]): void {
    const table = this.table(run, dataset, name);
    table.rows = rows;
    table.version = (table.version ?? 0) + 1;
  }

  /** The publish service's read routes. */
  app(): Hono {
    const app = new Hono();
    app.use(async (c, next) => {
      if (c.req.header("x-api-key") !== this.#key) {
        return c.json(envelope("forbidden", "wrong key", "x"), 403);
      }
      await next();
    });
    app.post("/data-publish/read/tables", async (c) => {
      const body = await c.req.json();
      this.calls.push({ path: "tables", body });
      const requestId = c.req.header("x-request-id") ?? "none";
      const tables = this.#runs.get(runKey(body));
      if (tables === undefined) {
        return c.json(envelope("release_not_published", "Nothing is published", requestId), 404);
      }
      return c.json({
        status: "success",
        payload: {
          tables: tables.map((t) => ({
            name: t.name,
            dataset: t.dataset,
            columns: t.columns,
            key: t.key,
          })),
        },
      }, 200);
    });
    app.post("/data-publish/read/rows", async (c) => {
      const body = await c.req.json();
      this.calls.push({ path: "rows", body });
      const requestId = c.req.header("x-request-id") ?? "none";
      const problems = [
        Number.isInteger(body.limit) && body.limit >= 1 && body.limit <= 10_000 ? "" : "limit",
        body.cursor === null || typeof body.cursor === "string" ? "" : "cursor",
        ["records", "tabular"].includes(body.orientation) ? "" : "orientation",
        typeof body.next_base === "string" ? "" : "next_base",
        typeof body.dataset === "string" && typeof body.table === "string" ? "" : "table",
      ].filter((p) => p !== "");
      if (problems.length > 0) {
        return c.json(
          envelope("invalid_request", `Invalid ${problems.join(", ")}`, requestId),
          422,
        );
      }
      const tables = this.#runs.get(runKey(body));
      if (tables === undefined) {
        return c.json(envelope("release_not_published", "Nothing is published", requestId), 404);
      }
      const table = tables.find((t) => t.dataset === body.dataset && t.name === body.table);
      if (table === undefined) {
        return c.json(envelope("table_not_found", `No table ${body.table}`, requestId), 404);
      }
      const columns = table.columns.map((col) => ({ name: col.name, type: col.type }));
      if (table.key.length === 0) return keylessPage(c, table, body, columns, requestId);
      let after: (string | null)[] | undefined;
      if (body.cursor !== null) {
        try {
          after = JSON.parse(atob(String(body.cursor)));
          if (!Array.isArray(after) || after.length !== table.key.length) throw new Error();
        } catch {
          return c.json(envelope("invalid_cursor", "Cannot read the cursor", requestId), 400);
        }
      }
      const keyIndexes = table.key.map((k) => table.columns.findIndex((col) => col.name === k));
      const keyTypes = keyIndexes.map((i) => table.columns[i]!.type);
      const keyOf = (row: (string | null)[]) => keyIndexes.map((i) => row[i] ?? null);
      const compare = (a: (string | null)[], b: (string | null)[]) => {
        for (const [i, type] of keyTypes.entries()) {
          const x = a[i] ?? "";
          const y = b[i] ?? "";
          const d = type === "integer" ? Number(x) - Number(y) : x < y ? -1 : x > y ? 1 : 0;
          if (d !== 0) return d;
        }
        return 0;
      };
      const sorted = [...table.rows].sort((a, b) => compare(keyOf(a), keyOf(b)));
      const remaining = after === undefined
        ? sorted
        : sorted.filter((row) => compare(keyOf(row), after!) > 0);
      const page = remaining.slice(0, body.limit);
      const last = page.at(-1);
      const next = remaining.length > body.limit && last !== undefined
        ? body.next_base + encodeURIComponent(btoa(JSON.stringify(keyOf(last))))
        : null;
      const values = body.orientation === "tabular" ? { rows: page } : {
        records: page.map((row) =>
          Object.fromEntries(table.columns.map((col, i) => [col.name, row[i] ?? null]))
        ),
      };
      return pageReply(c, table, columns, values, next, page.length);
    });
    return app;
  }
}

type Columns = { name: string; type: string }[];

function pageReply(
  c: Context,
  table: FakeReadTable,
  columns: Columns,
  values: Record<string, unknown>,
  next: string | null,
  rows: number,
): Response {
  const text = JSON.stringify({
    status: "success",
    payload: { table: table.name, columns, ...values, next },
  });
  const bytes = new TextEncoder().encode(text);
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "content-length": String(bytes.length),
    "x-rows-returned": String(rows),
    "x-hawk-payload-hash": hawkPayloadHash(bytes, "application/json"),
  };
  if (next !== null) headers["link"] = `<${next}>; rel="next"`;
  return c.body(bytes, 200, headers);
}

/** A page of a table without a key: row order, the cursor bound to the table's version. */
function keylessPage(
  c: Context,
  table: FakeReadTable,
  // deno-lint-ignore no-explicit-any
  body: Record<string, any>,
  columns: Columns,
  requestId: string,
): Response {
  const version = table.version ?? 0;
  let at = 0;
  if (body.cursor !== null) {
    let cursor: { v?: unknown; at?: unknown };
    try {
      cursor = JSON.parse(atob(String(body.cursor)));
      if (!Number.isInteger(cursor.v) || !Number.isInteger(cursor.at)) throw new Error();
    } catch {
      return c.json(envelope("invalid_cursor", "Cannot read the cursor", requestId), 400);
    }
    if (cursor.v !== version) {
      return c.json(
        envelope(
          "release_changed",
          `Cannot continue reading table "${table.name}" of dataset "${table.dataset}": it was ` +
            "republished since the first page; start again without a cursor",
          requestId,
        ),
        409,
      );
    }
    at = cursor.at as number;
  }
  const page = table.rows.slice(at, at + body.limit);
  const end = at + page.length;
  const next = end < table.rows.length
    ? body.next_base + encodeURIComponent(btoa(JSON.stringify({ v: version, at: end })))
    : null;
  const values = body.orientation === "tabular" ? { rows: page } : {
    records: page.map((row) =>
      Object.fromEntries(table.columns.map((col, i) => [col.name, row[i] ?? null]))
    ),
  };
  return pageReply(c, table, columns, values, next, page.length);
}

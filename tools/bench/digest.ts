/**
 * The correctness digest the bench compares every output with its source by: the row count,
 * `sum(amount)`, `max(price)`, `min(created_at)`, `count(maybe)` and a hash of the sorted `u` values of
 * the W table. PostgreSQL and DuckDB compute theirs in SQL; a CSV file's is computed here, row by row.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import { DuckDBInstance } from "@duckdb/node-api";
import { parseCsv } from "../../domain/csv.ts";
import { BENCH_SCHEMA, PG, postgresAdmin } from "./databases.ts";

/** The digest of a copy of the W table. */
export interface Digest {
  rows: number;
  /** `sum(amount)`, with two decimals. */
  sumAmount: string;
  /** `max(price)`, with ten decimals; empty for no rows. */
  maxPrice: string;
  /** `min(created_at)` in UTC as `YYYY-MM-DD HH:MM:SS`; empty for no rows. */
  minCreatedAt: string;
  countMaybe: number;
  /** The first 16 hex digits of the SHA-256 of the sorted `u` values joined by newlines. */
  uHash: string;
}

/** A decimal text as an integer of `scale` decimals (`"12.3"`, 2 → `1230n`); extra digits are cut. */
export function scaled(text: string, scale: number): bigint {
  const [whole = "0", fraction = ""] = text.split(".");
  return BigInt(whole + fraction.padEnd(scale, "0").slice(0, scale));
}

/** The inverse of {@link scaled}: `1230n`, 2 → `"12.30"`. */
export function unscaled(value: bigint, scale: number): string {
  const negative = value < 0n;
  const digits = (negative ? -value : value).toString().padStart(scale + 1, "0");
  return `${negative ? "-" : ""}${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
}

/** The hash of the sorted `u` values joined by newlines, fed piece by piece (no giant string). */
export function sortedHash(values: string[]): string {
  values.sort();
  const hash = createHash("sha256");
  values.forEach((value, i) => hash.update(i === 0 ? value : `\n${value}`));
  return hash.digest("hex").slice(0, 16);
}

/** The digest of rows read one by one; only the `u` column is kept, to sort it at the end. */
export async function digestOf(
  rows: AsyncIterable<Record<string, string | null>>,
): Promise<Digest> {
  let count = 0;
  let sumAmount = 0n;
  let maxPrice: bigint | undefined;
  let minCreatedAt: string | undefined;
  let countMaybe = 0;
  const us: string[] = [];
  for await (const row of rows) {
    count++;
    if (row.amount !== null) sumAmount += scaled(row.amount!, 2);
    if (row.price !== null) {
      const price = scaled(row.price!, 10);
      if (maxPrice === undefined || price > maxPrice) maxPrice = price;
    }
    const created = row.created_at!.replace(/\+00$/, "");
    if (minCreatedAt === undefined || created < minCreatedAt) minCreatedAt = created;
    if (row.maybe !== null) countMaybe++;
    us.push(row.u!);
  }
  return {
    rows: count,
    sumAmount: unscaled(sumAmount, 2),
    maxPrice: maxPrice === undefined ? "" : unscaled(maxPrice, 10),
    minCreatedAt: minCreatedAt ?? "",
    countMaybe,
    uHash: sortedHash(us),
  };
}

/** The digest PostgreSQL computes itself, of the W table or of a loaded copy of it. */
export async function postgresDigest(
  database: string = PG.database,
  table = `${BENCH_SCHEMA}.wide`,
): Promise<Digest> {
  const sql = postgresAdmin(database);
  try {
    await sql`set timezone = 'UTC'`;
    const [r] = await sql.unsafe(`select count(*)::int as rows, sum(amount)::text as sum_amount,
      max(price)::text as max_price, to_char(min(created_at), 'YYYY-MM-DD HH24:MI:SS') as min_created,
      count(maybe)::int as count_maybe from ${table}`);
    const us: string[] = [];
    for await (
      const batch of sql.unsafe(`select u::text from ${table}`).values().cursor(100_000)
    ) {
      for (const [u] of batch) us.push(u);
    }
    return {
      rows: r!.rows,
      sumAmount: r!.sum_amount,
      maxPrice: r!.max_price,
      minCreatedAt: r!.min_created,
      countMaybe: r!.count_maybe,
      uHash: sortedHash(us),
    };
  } finally {
    await sql.end();
  }
}

/** The records of a W CSV file (header first), by column name; an empty field is NULL. */
export async function* csvRecords(path: string): AsyncGenerator<Record<string, string | null>> {
  // The W table has no quoted newlines, so lines are records.
  const lines = createInterface({ input: createReadStream(path, { highWaterMark: 1 << 20 }) });
  let header: string[] | undefined;
  for await (const line of lines) {
    const [values] = parseCsv(line + "\n");
    if (header === undefined) {
      header = values!.map(String);
      continue;
    }
    yield Object.fromEntries(header.map((h, i) => [h, values![i] ?? null]));
  }
}

/** The digest of a W CSV file. */
export function csvDigest(path: string): Promise<Digest> {
  return digestOf(csvRecords(path));
}

/** The digest DuckDB computes of `"<schema>".wide` in a database file. */
export async function duckdbDigest(path: string, schema: string): Promise<Digest> {
  const instance = await DuckDBInstance.create(path, { access_mode: "READ_ONLY" });
  const conn = await instance.connect();
  try {
    await conn.run("set TimeZone = 'UTC'");
    const r =
      (await conn.runAndReadAll(`select count(*)::int as rows, sum(amount)::varchar as sum_amount,
      max(price)::varchar as max_price, strftime(min(created_at), '%Y-%m-%d %H:%M:%S') as min_created,
      count(maybe)::int as count_maybe from "${schema}".wide`)).getRowObjects()[0]!;
    const us: string[] = [];
    const result = await conn.stream(`select u::varchar as u from "${schema}".wide`);
    for (let chunk = await result.fetchChunk(); chunk !== null && chunk.rowCount > 0;) {
      for (const [u] of chunk.getRows()) us.push(String(u));
      chunk = await result.fetchChunk();
    }
    return {
      rows: Number(r.rows),
      sumAmount: String(r.sum_amount),
      maxPrice: String(r.max_price),
      minCreatedAt: String(r.min_created),
      countMaybe: Number(r.count_maybe),
      uHash: sortedHash(us),
    };
  } finally {
    conn.closeSync();
    instance.closeSync();
  }
}

/**
 * Compares a cell's digest with the source's.
 *
 * @returns undefined when they match, else the line that says how they differ.
 */
export function digestMismatch(
  cell: string,
  actual: Digest,
  expected: Digest,
): string | undefined {
  return JSON.stringify(actual) === JSON.stringify(expected)
    ? undefined
    : `Digest mismatch ${cell}: ${JSON.stringify(actual)} vs ${JSON.stringify(expected)}`;
}

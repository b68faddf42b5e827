/**
 * The read API cell of `deno task bench` (issue 19 item 5): paging through the W table published in the
 * PostgreSQL destination via `POST /data-publish/read/rows` (limit 10,000, `tabular`), against the
 * limit `psql \copy (select ...) to stdout` of the same table to `/dev/null`.
 *
 * The table is packaged into the destination by the service (PostgreSQL source → `postgresql`), then
 * granted to the read-only role the way the publish step grants it (OPAL, which publish also calls, does
 * not run here and has no part in reading). Each timed run reads every page's body without parsing it
 * (as `psql` writes to `/dev/null`; only its end, which holds `next`, is decoded), counting
 * `x-rows-returned`; the warm-up run parses every page and
 * checks that every id comes once, in key order. Peak RSS is the service's, reset before each run.
 *
 * @module
 */
import { DEST_DB, PG, postgresAdmin, W_COLUMNS_LIST } from "./databases.ts";
import { median } from "./report.ts";
import { peakRssMb, resetPeakRss, rssMb, say, sh } from "./processes.ts";

/** What the read cell measured. */
export interface ReadApiResult {
  readonly rows: number;
  readonly pages: number;
  /** Median seconds to page through the table. */
  readonly seconds: number;
  /** Median seconds of the `psql \copy ... to stdout` limit. */
  readonly limit: number;
  readonly peakRssMb: number;
  /** The service's RSS just before the timed runs (what the peak is compared with). */
  readonly rssBeforeMb: number;
  /** Whether the checked run gave every id once, in key order. */
  readonly inOrderOnce: boolean;
}

/** Where the service is and how to reach it. */
export interface ReadApiService {
  readonly url: string;
  readonly key: string;
  readonly pid: number;
}

/** The page size the cell reads with (the API's largest). */
export const READ_PAGE_ROWS = 10_000;

/** `psql \copy (select <W columns> from <table>) to stdout` into `/dev/null`, timed. */
export async function pgCopyToStdoutLimit(qualified: string): Promise<number> {
  return await sh(
    `psql -h ${PG.host} -U ${PG.user} -d ${DEST_DB} -q -c "set timezone='UTC'" -c "\\copy (select ${W_COLUMNS_LIST} from ${qualified}) to stdout" > /dev/null`,
  );
}

/**
 * Packages W into the destination, grants it, and pages through it `runs` times after a checked warm-up.
 *
 * @param source the package request's `source` (the bench's PostgreSQL, with its credentials).
 */
export async function measureReadApi(
  service: ReadApiService,
  options: { rows: number; runs: number; source: unknown; schemaName: string },
): Promise<ReadApiResult> {
  const run = { project_name: "BenchRead", project_start_time: "20250101_000099" };
  const res = await fetch(`${service.url}/data-publish/package`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-api-key": service.key },
    body: JSON.stringify({
      ...run,
      destination: { type: "postgresql" },
      source: options.source,
      dataset: { schema_name: options.schemaName, tables: [{ name: "wide" }] },
    }),
  });
  const body = await res.json();
  if (res.status !== 200) throw new Error(`package failed: ${JSON.stringify(body)}`);
  const [schema, table] = String(body.payload.data_retrieved[0].table_name).split(".");
  const qualified = `"${schema}"."${table}"`;
  const dest = postgresAdmin(DEST_DB);
  try {
    // What publish's grantReadAccess does.
    await dest.unsafe(
      `grant usage on schema "${schema}" to cr8tor_bench_opal_ro;
       grant select on ${qualified} to cr8tor_bench_opal_ro`,
    );
    const request = {
      ...run,
      destination: { type: "postgresql", name: "" },
      dataset: options.schemaName,
      table: "wide",
      limit: READ_PAGE_ROWS,
      orientation: "tabular",
      next_base: "",
    };
    const times: number[] = [];
    const limits: number[] = [];
    let peak = 0;
    let rssBefore = 0;
    let inOrderOnce = false;
    let pages = 0;
    for (let attempt = 0; attempt <= options.runs; attempt++) {
      const checked = attempt === 0;
      const limit = await pgCopyToStdoutLimit(qualified);
      rssBefore = await rssMb(service.pid);
      await resetPeakRss(service.pid);
      const started = performance.now();
      let cursor: string | null = null;
      let rows = 0;
      let lastId = 0n;
      let ordered = true;
      pages = 0;
      for (;;) {
        const page: Response = await fetch(`${service.url}/data-publish/read/rows`, {
          method: "POST",
          headers: { "content-type": "application/json", "x-api-key": service.key },
          body: JSON.stringify({ ...request, cursor }),
        });
        if (page.status !== 200) throw new Error(`read failed: ${await page.text()}`);
        pages++;
        rows += Number(page.headers.get("x-rows-returned"));
        let next: string | null;
        if (checked) {
          const json: { payload: { rows: string[][]; next: string | null } } = await page.json();
          for (const row of json.payload.rows as string[][]) {
            const id = BigInt(row[0]!);
            if (id !== lastId + 1n) ordered = false;
            lastId = id;
          }
          next = json.payload.next;
        } else {
          // The reply ends with `"next":<cursor or null>}}`; only its end is decoded.
          const body = new Uint8Array(await page.arrayBuffer());
          let tail = new TextDecoder().decode(body.subarray(Math.max(0, body.length - 8192)));
          if (!tail.includes('"next":')) tail = new TextDecoder().decode(body);
          next = JSON.parse(tail.slice(tail.lastIndexOf('"next":') + 7, -2));
        }
        if (next === null) break;
        cursor = next;
      }
      const seconds = (performance.now() - started) / 1000;
      if (rows !== options.rows) {
        throw new Error(`read ${rows} rows through the API, expected ${options.rows}`);
      }
      if (checked) {
        inOrderOnce = ordered && lastId === BigInt(options.rows);
        say(
          `read API warm-up (checked): ${
            seconds.toFixed(2)
          } s, every id once in order: ${inOrderOnce}`,
        );
        continue;
      }
      times.push(seconds);
      limits.push(limit);
      peak = Math.max(peak, await peakRssMb(service.pid));
    }
    return {
      rows: options.rows,
      pages,
      seconds: median(times),
      limit: median(limits),
      peakRssMb: peak,
      rssBeforeMb: rssBefore,
      inOrderOnce,
    };
  } finally {
    await dest.unsafe(`drop schema if exists "${schema}" cascade`);
    await dest.end();
  }
}

/** One line for the bench's progress output. */
export function readApiSummary(r: ReadApiResult): string {
  return `read API (PostgreSQL destination, ${r.rows} rows, ${r.pages} pages of ${READ_PAGE_ROWS}): ` +
    `${r.seconds.toFixed(2)} s, limit ${r.limit.toFixed(2)} s, ratio ${
      (r.seconds / r.limit).toFixed(2)
    }, ` +
    `RSS before ${r.rssBeforeMb} MB, peak RSS ${r.peakRssMb} MB, every row once in order: ${r.inOrderOnce}`;
}

/** The cell as a Markdown table, for the report. */
export function readApiReport(r: ReadApiResult): string {
  return [
    "Read API (issue 19): paging through the PostgreSQL destination's copy of W via " +
    "`POST /data-publish/read/rows` (limit 10,000, tabular), against `psql \\copy (select ...) to stdout` " +
    "to /dev/null.",
    "",
    "| rows | pages | read API (s) | psql \\copy to stdout (s) | ratio | RSS before (MB) | peak RSS (MB) | every row once, in order |",
    "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    `| ${r.rows} | ${r.pages} | ${r.seconds.toFixed(2)} | ${r.limit.toFixed(2)} | ${
      (r.seconds / r.limit).toFixed(2)
    } | ${r.rssBeforeMb} | ${Math.round(r.peakRssMb)} | ${r.inOrderOnce ? "yes" : "NO"} |`,
  ].join("\n");
}

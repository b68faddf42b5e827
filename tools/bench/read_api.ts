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
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import hawkModule from "hawk";
import {
  openSqliteReleaseStore,
  sqliteReleaseStorePath,
} from "../../adapters/sqlite/sqlite_release_store.ts";
import { newRelease, withPublication } from "../../domain/release.ts";
import { type ServiceProcess, startService } from "../../tests/support/processes.ts";
import { DEST_DB, PG, postgresAdmin, W_COLUMNS_LIST } from "./databases.ts";
import { median } from "./report.ts";
import { peakRssMb, resetPeakRss, rssMb, say, sh } from "./processes.ts";

// deno-lint-ignore no-explicit-any
const hawk = hawkModule as any;

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
  /** The same table paged through the gateway's HAWK data API (`GET /data/v1/.../rows`). */
  readonly gateway?: {
    readonly seconds: number;
    readonly limit: number;
    /** Peak RSS of the publish service and of the gateway during those runs. */
    readonly publishPeakRssMb: number;
    readonly gatewayPeakRssMb: number;
    readonly gatewayRssBeforeMb: number;
    readonly inOrderOnce: boolean;
  };
}

/** What starting the gateway in front of the publish service needs. */
export interface ReadApiGatewayOptions {
  /** A folder for the gateway's state, clients file and audit log. */
  readonly work: string;
  /** The secrets folder the publish service reads (the gateway's keys are added to it). */
  readonly secrets: string;
  /** More environment for the gateway (`ALLOWED_SOURCES_FILE`, ...). */
  readonly env: Record<string, string>;
}

const BENCH_HAWK = {
  id: "bench-pipeline",
  key: `bench-hawk-${crypto.randomUUID()}`,
  algorithm: "sha256",
};

/**
 * Starts the gateway (approval) with `DATA_API=on`, one client allowed project `project`, and a published
 * release of the run in its release store (as `POST /project/publish` leaves one); its process and the
 * release id.
 */
async function startGateway(
  publishUrl: string,
  publishKey: string,
  run: { project_name: string; project_start_time: string },
  options: ReadApiGatewayOptions,
): Promise<{ gateway: ServiceProcess; releaseId: string }> {
  const stateDir = join(options.work, "gateway-state");
  await mkdir(stateDir, { recursive: true });
  const store = await openSqliteReleaseStore({ path: sqliteReleaseStorePath(stateDir) });
  let releaseId: string;
  try {
    const now = new Date().toISOString();
    const fresh = newRelease({
      ...run,
      destination: { type: "postgresql", name: "" },
      requested_by: { kind: "key", id: "0123456789abcdef" },
    }, now);
    const { release } = await store.ensure(
      withPublication(fresh, {
        published_at: now,
        receipt: { jws: "a.b.c", claims: {} },
        crate: {},
      }, null),
    );
    releaseId = release.id;
  } finally {
    await store.close();
  }
  for (
    const [name, value] of Object.entries({
      publishserviceapikey: publishKey,
      approvalserviceapikey: `approval-${crypto.randomUUID()}`,
      metadataserviceapikey: `metadata-${crypto.randomUUID()}`,
      "hawk-bench-pipeline": BENCH_HAWK.key,
    })
  ) {
    await writeFile(join(options.secrets, name), value);
  }
  const clientsFile = join(options.work, "data-api-clients.json");
  await writeFile(
    clientsFile,
    JSON.stringify({
      clients: [{
        id: BENCH_HAWK.id,
        secret_name: "hawk-bench-pipeline",
        scopes: [{ project: run.project_name, tables: "*" }],
      }],
    }),
  );
  const publish = new URL(publishUrl);
  const gateway = await startService("approval", {
    ...options.env,
    SECRETS_MNT_PATH: options.secrets,
    STATE_DIR: stateDir,
    AUDIT_LOG_PATH: join(options.work, "gateway-audit.jsonl"),
    DATA_API: "on",
    DATA_API_CLIENTS_FILE: clientsFile,
    METADATA_CONTAINER_NAME: "127.0.0.1",
    METADATA_CONTAINER_PORT: "9",
    PUBLISH_CONTAINER_NAME: publish.hostname,
    PUBLISH_CONTAINER_PORT: publish.port,
  });
  return { gateway, releaseId };
}

/** One page through the gateway, its `Server-Authorization` checked as a HAWK client does. */
async function gatewayPage(url: string): Promise<{ text: string; rows: number }> {
  const { header, artifacts } = hawk.client.header(url, "GET", { credentials: BENCH_HAWK });
  const res = await fetch(url, { headers: { authorization: header } });
  const text = await res.text();
  const headers: Record<string, string> = {};
  res.headers.forEach((value, name) => headers[name] = value);
  hawk.client.authenticate({ headers }, BENCH_HAWK, artifacts, { payload: text, required: true });
  if (res.status !== 200) throw new Error(`read through the gateway failed: ${text.slice(0, 500)}`);
  return { text, rows: Number(res.headers.get("x-rows-returned")) };
}

/** Pages through the table via the gateway; seconds, rows, and whether ids came once in order. */
async function pageThroughGateway(
  base: string,
  releaseId: string,
  checked: boolean,
): Promise<{ seconds: number; rows: number; ordered: boolean; lastId: bigint }> {
  const started = performance.now();
  let next: string | null =
    `/data/v1/releases/${releaseId}/tables/wide/rows?limit=${READ_PAGE_ROWS}&orientation=tabular`;
  let rows = 0;
  let lastId = 0n;
  let ordered = true;
  while (next !== null) {
    const page = await gatewayPage(base + next);
    rows += page.rows;
    if (checked) {
      const json: { payload: { rows: string[][]; next: string | null } } = JSON.parse(page.text);
      for (const row of json.payload.rows) {
        const id = BigInt(row[0]!);
        if (id !== lastId + 1n) ordered = false;
        lastId = id;
      }
      next = json.payload.next;
    } else {
      const tail = page.text.slice(page.text.lastIndexOf('"next":') + 7, -2);
      next = JSON.parse(tail);
    }
  }
  return { seconds: (performance.now() - started) / 1000, rows, ordered, lastId };
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
  options: {
    rows: number;
    runs: number;
    source: unknown;
    schemaName: string;
    /** Also page through the gateway's HAWK data API. */
    gateway?: ReadApiGatewayOptions;
  },
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
  let gateway: ServiceProcess | undefined;
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
    let viaGateway: ReadApiResult["gateway"];
    if (options.gateway !== undefined) {
      const started = await startGateway(service.url, service.key, run, options.gateway);
      gateway = started.gateway;
      const gTimes: number[] = [];
      const gLimits: number[] = [];
      let publishPeak = 0;
      let gatewayPeak = 0;
      let gatewayBefore = 0;
      let gatewayOrdered = false;
      for (let attempt = 0; attempt <= options.runs; attempt++) {
        const checked = attempt === 0;
        const limit = await pgCopyToStdoutLimit(qualified);
        gatewayBefore = await rssMb(gateway.pid);
        await resetPeakRss(service.pid);
        await resetPeakRss(gateway.pid);
        const paged = await pageThroughGateway(gateway.url, started.releaseId, checked);
        if (paged.rows !== options.rows) {
          throw new Error(`read ${paged.rows} rows through the gateway, expected ${options.rows}`);
        }
        if (checked) {
          gatewayOrdered = paged.ordered && paged.lastId === BigInt(options.rows);
          say(
            `read API via the gateway, warm-up (checked): ${
              paged.seconds.toFixed(2)
            } s, every id once in order: ${gatewayOrdered}`,
          );
          continue;
        }
        gTimes.push(paged.seconds);
        gLimits.push(limit);
        publishPeak = Math.max(publishPeak, await peakRssMb(service.pid));
        gatewayPeak = Math.max(gatewayPeak, await peakRssMb(gateway.pid));
      }
      viaGateway = {
        seconds: median(gTimes),
        limit: median(gLimits),
        publishPeakRssMb: publishPeak,
        gatewayPeakRssMb: gatewayPeak,
        gatewayRssBeforeMb: gatewayBefore,
        inOrderOnce: gatewayOrdered,
      };
    }
    return {
      rows: options.rows,
      pages,
      seconds: median(times),
      limit: median(limits),
      peakRssMb: peak,
      rssBeforeMb: rssBefore,
      inOrderOnce,
      ...(viaGateway === undefined ? {} : { gateway: viaGateway }),
    };
  } finally {
    await gateway?.stop();
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
    `RSS before ${r.rssBeforeMb} MB, peak RSS ${r.peakRssMb} MB, every row once in order: ${r.inOrderOnce}` +
    (r.gateway === undefined
      ? ""
      : `; via the gateway (HAWK): ${r.gateway.seconds.toFixed(2)} s, limit ${
        r.gateway.limit.toFixed(2)
      } s, ratio ${
        (r.gateway.seconds / r.gateway.limit).toFixed(2)
      }, peak RSS publish ${r.gateway.publishPeakRssMb} MB, gateway ${r.gateway.gatewayRssBeforeMb} → ${r.gateway.gatewayPeakRssMb} MB, every row once in order: ${r.gateway.inOrderOnce}`);
}

/** The cell as a Markdown table, for the report. */
export function readApiReport(r: ReadApiResult): string {
  return [
    "Read API (issue 19): paging through the PostgreSQL destination's copy of W via " +
    "`POST /data-publish/read/rows` (limit 10,000, tabular), against `psql \\copy (select ...) to stdout` " +
    "to /dev/null.",
    "",
    "| path | rows | pages | read API (s) | psql \\copy to stdout (s) | ratio | RSS before (MB) | peak RSS (MB) | every row once, in order |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    `| publish route | ${r.rows} | ${r.pages} | ${r.seconds.toFixed(2)} | ${r.limit.toFixed(2)} | ${
      (r.seconds / r.limit).toFixed(2)
    } | ${r.rssBeforeMb} | ${Math.round(r.peakRssMb)} | ${r.inOrderOnce ? "yes" : "NO"} |`,
    ...(r.gateway === undefined ? [] : [
      `| gateway, HAWK | ${r.rows} | ${r.pages} | ${r.gateway.seconds.toFixed(2)} | ${
        r.gateway.limit.toFixed(2)
      } | ${
        (r.gateway.seconds / r.gateway.limit).toFixed(2)
      } | gateway ${r.gateway.gatewayRssBeforeMb} | publish ${
        Math.round(r.gateway.publishPeakRssMb)
      }, gateway ${Math.round(r.gateway.gatewayPeakRssMb)} | ${
        r.gateway.inOrderOnce ? "yes" : "NO"
      } |`,
    ]),
  ].join("\n");
}

/**
 * The demo, with nothing installed but Deno.
 *
 * `deno task demo` builds a throw-away configuration in a new run folder (`.demo/run-<time>/`: random
 * API keys and source credentials as secret files, a local filestore `storage/lsc/{staging,production}`),
 * starts an embedded PostgreSQL (PGlite, PostgreSQL compiled to WebAssembly, served over TCP by
 * `@electric-sql/pglite-socket`) holding the synthetic dataset of `tools/demo_data.ts`, starts the three
 * services in this process on free ports, and then acts as the CR8TOR CLI: `POST /project/validate` and
 * `POST /project/package` for two datasets, then `POST /project/publish`, all through the gateway with
 * the gateway key. Each package is started as a run (`Prefer: respond-async`) and followed over its
 * Server-Sent Events (`GET /runs/{id}/events`), printing a progress line per table (rows, bytes, and a
 * percentage and ETA where the source estimated the rows; the demo tables are analysed after loading
 * so PGlite has estimates); the run's outcome is then what the synchronous call would have answered.
 * It prints what each step returned, the published files with their SHA-512, the project's runs
 * (`GET /runs`), and the command that verifies the BagIt bag; then it stops everything. Exit code 0 when
 * every step succeeded. The run store (SQLite) is in the run folder's `state/`.
 *
 * `deno task start` (`--serve`) starts the same stack on the default ports 8000/8002/8003 and leaves it
 * running until Ctrl-C, printing the URLs, the gateway key's file and an example request. It also starts
 * the DEMO identity provider (`tools/demo_identity_provider.ts`, 127.0.0.1:8010) with its demo people,
 * turns on the demo approval policy (package and publish to LSC are gated) and the dashboard at
 * `http://127.0.0.1:8000/ui/`, and prints who can sign in.
 *
 * Options: `--format csv|duckdb` (default csv), `--serve`, `--ports auto|default` (free ports, or
 * 8000/8002/8003; the demo defaults to auto, `--serve` to default), `--dir PATH` (the run folder; it must
 * not exist or be empty). Keys and passwords are never printed, only the files that hold them.
 *
 * In the demo run the services' JSON log lines go to `services.log` in the run folder, so the output
 * stays readable; with `--serve` they go to standard output as usual.
 *
 * @module
 */
import { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { isAbsolute, join, relative, resolve } from "node:path";
import { parseArgs } from "node:util";
import { ConfigError } from "../apps/_shared/app_errors.ts";
import { type LogSink, stdoutSink } from "../apps/_shared/log.ts";
import { type HttpServer, listen, type RunnableService } from "../apps/_shared/serve.ts";
import { buildApprovalService } from "../apps/approval/main.ts";
import { buildMetadataService } from "../apps/metadata/main.ts";
import { buildPublishService } from "../apps/publish/main.ts";
import { DEMO_SCHEMAS, loadDemoData } from "./demo_data.ts";
import { ProgressPrinter, readServerSentEvents, type ServerSentEvent } from "./demo_progress.ts";
import { FINAL_RUN_STATES, type RunView } from "../domain/run.ts";
import {
  DEMO_APPROVAL_POLICY,
  DEMO_PASSWORD,
  DEMO_PEOPLE,
  DEMO_UI_CLIENT_ID,
  startDemoIdentityProvider,
} from "./demo_identity_provider.ts";

type Json = Record<string, unknown>;
type Format = "csv" | "duckdb";

const ROOT = resolve(import.meta.dirname ?? ".", "..");
const HOST = "127.0.0.1";
const DEFAULT_PORTS = { approval: 8000, metadata: 8002, publish: 8003 } as const;
/** The DEMO identity provider's port with `--ports default` (`--serve`). */
const DEMO_IDENTITY_PROVIDER_PORT = 8010;
const PROJECT = "DemoProject";
const SOURCE_USER_KEY = "demosourceuser";
const SOURCE_PASSWORD_KEY = "demosourcepassword";
const GATEWAY_KEY = "approvalserviceapikey";
const STEP_TIMEOUT_SECONDS = 300;

// ---------------------------------------------------------------------------------------------------------
// Output: the demo's own lines go to the terminal; in a demo run the services' log lines go to a file.

const encoder = new TextEncoder();

function say(line = ""): void {
  stdoutSink(line);
}

/** Writes text to standard output as it is (progress lines bring their own line ends). */
function writeOut(text: string): void {
  const bytes = encoder.encode(text);
  let written = 0;
  while (written < bytes.length) written += Deno.stdout.writeSync(bytes.subarray(written));
}

/** A log sink that appends the services' log lines to `file`. */
function fileSink(file: Deno.FsFile): LogSink {
  return (line) => {
    const bytes = encoder.encode(line + "\n");
    let written = 0;
    while (written < bytes.length) written += file.writeSync(bytes.subarray(written));
  };
}

/** A path as the user should read it: relative when under the working directory. */
function shown(path: string): string {
  const rel = relative(Deno.cwd(), path);
  return rel !== "" && !rel.startsWith("..") && !isAbsolute(rel) ? rel : path;
}

/** Wraps `items` joined by ", " into lines of at most `width` characters, each indented. */
function wrap(items: readonly string[], indent: string, width = 100): string[] {
  const lines: string[] = [];
  let line = "";
  for (const item of items) {
    const next = line === "" ? item : `${line}, ${item}`;
    if (line !== "" && indent.length + next.length > width) {
      lines.push(`${indent}${line},`);
      line = item;
    } else line = next;
  }
  if (line !== "") lines.push(indent + line);
  return lines;
}

// ---------------------------------------------------------------------------------------------------------
// The throw-away configuration.

function randomHex(bytes: number): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(bytes)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}

/** `YYYYMMDD_HHMMSS` in UTC, the CLI's `project_start_time`. */
function startTimeOf(date: Date): string {
  return date.toISOString().slice(0, 19).replaceAll("-", "").replace("T", "_").replaceAll(":", "");
}

/** Creates the run folder: `dir` when given (it must not exist or be empty), else `.demo/run-<time>`. */
async function createRunFolder(dir: string | undefined, startTime: string): Promise<string> {
  if (dir !== undefined) {
    const path = resolve(dir);
    await mkdir(path, { recursive: true });
    if ((await readdir(path)).length > 0) {
      throw new ConfigError(`Cannot use ${path} as the run folder: it is not empty`);
    }
    return path;
  }
  await mkdir(join(ROOT, ".demo"), { recursive: true });
  for (let n = 1;; n++) {
    const path = join(ROOT, ".demo", n === 1 ? `run-${startTime}` : `run-${startTime}-${n}`);
    try {
      await mkdir(path);
      return path;
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    }
  }
}

interface Layout {
  readonly run: string;
  readonly secrets: string;
  readonly storage: string;
  readonly gatewayKeyFile: string;
}

async function writeConfiguration(run: string): Promise<Layout> {
  const secrets = join(run, "secrets");
  const storage = join(run, "storage", "lsc");
  await mkdir(secrets, { mode: 0o700 });
  await mkdir(join(storage, "staging"), { recursive: true });
  await mkdir(join(storage, "production"));
  const files: Record<string, string> = {
    approvalserviceapikey: randomHex(24),
    metadataserviceapikey: randomHex(24),
    publishserviceapikey: randomHex(24),
    // PGlite accepts any user and password; they are here because a real source needs them.
    [SOURCE_USER_KEY]: "cr8tor_demo_reader",
    [SOURCE_PASSWORD_KEY]: randomHex(16),
  };
  for (const [name, value] of Object.entries(files)) {
    await writeFile(join(secrets, name), value + "\n", { mode: 0o600 });
  }
  return { run, secrets, storage, gatewayKeyFile: join(secrets, GATEWAY_KEY) };
}

// ---------------------------------------------------------------------------------------------------------
// The stack: PGlite on TCP and the three services.

interface Listening {
  readonly server: HttpServer;
  readonly port: number;
  readonly close: () => Promise<void>;
}

/** Serves a service the way `runService` does (same header timeout), on the demo's host. */
async function listenAs(name: string, service: RunnableService): Promise<Listening> {
  try {
    const server = await listen(service.fetch, { ...service, hostname: HOST });
    return { server, port: server.port, close: () => service.close?.() ?? Promise.resolve() };
  } catch (e) {
    if ((e as { code?: unknown }).code === "EADDRINUSE" || e instanceof Deno.errors.AddrInUse) {
      throw new ConfigError(
        `Cannot start the ${name} service: port ${service.port} is in use; stop what uses it, or run with --ports auto`,
      );
    }
    throw e;
  }
}

interface Stack {
  readonly pgPort: number;
  readonly ports: {
    readonly approval: number;
    readonly metadata: number;
    readonly publish: number;
  };
  readonly startupMs: { readonly pglite: number; readonly data: number; readonly services: number };
  /** The DEMO identity provider's URL, when the dashboard is on. */
  readonly identityProvider: string | null;
  stop(): Promise<void>;
}

/** A free port on the demo's host (for the dashboard's callback URL, known before the gateway listens). */
function aFreePort(): number {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/**
 * The stack; with `dashboard` (`--serve`), also the DEMO identity provider, the demo approval policy and
 * the dashboard on the gateway.
 */
async function startStack(
  layout: Layout,
  fixedPorts: boolean,
  logSink: LogSink,
  dashboard = false,
): Promise<Stack> {
  const cleanups: (() => Promise<void>)[] = [];
  const stop = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  };
  try {
    let t = performance.now();
    const db = await PGlite.create();
    cleanups.push(() => db.close());
    const pgliteMs = performance.now() - t;
    t = performance.now();
    await loadDemoData(db);
    // Planner statistics, so that the source can estimate each table's rows (progress percentages).
    await db.exec(`analyze`);
    const dataMs = performance.now() - t;
    t = performance.now();
    // PGlite is a single backend. The socket server accepts several connections and queues their
    // protocol messages onto it (keeping a transaction's messages together); a connection beyond
    // maxConnections (default 1) gets "Too many connections" instead of a protocol reply. The services
    // open one connection per request and close it, so 32 leaves room for concurrent requests in
    // --serve and for closes the server notices a moment late.
    const pg = new PGLiteSocketServer({ db, host: HOST, port: 0, maxConnections: 32 });
    await pg.start();
    cleanups.push(() => pg.stop());
    const pgPort = Number(pg.getServerConn().split(":").pop());

    // The demo's own allow-list: exactly its PGlite database, with its two credential secrets.
    const allowList = join(layout.run, "allowed-sources.json");
    await writeFile(
      allowList,
      JSON.stringify(
        {
          sources: [{
            type: "postgresql",
            host: HOST,
            port: pgPort,
            database: "postgres",
            credentials: [{ username: SOURCE_USER_KEY, password: SOURCE_PASSWORD_KEY }],
          }],
        },
        null,
        2,
      ) + "\n",
    );

    const env: Record<string, string> = {
      SECRETS_MNT_PATH: layout.secrets,
      ALLOWED_SOURCES_FILE: allowList,
      TARGET_STORAGE_ACCOUNT_LSC_SDE_MNT_PATH: layout.storage,
      // The run store (SQLite) lives in the run folder, not in ./state.
      STATE_DIR: join(layout.run, "state"),
      // Dashboard uploads (`docs/uploads.md`): the gateway writes the quarantine, publish reads it.
      UPLOAD_QUARANTINE_PATH: join(layout.run, "quarantine"),
      // One backend runs one query at a time, so extracting tables in parallel gains nothing.
      PACKAGE_CONCURRENCY: "1",
      // The demo's PGlite speaks no TLS: opt out of the verified TLS every source gets by default.
      SOURCE_POSTGRES_SSLMODE: "disable",
      SOURCE_CONNECT_TIMEOUT_SECONDS: "10",
      // The demo data is small: a stuck step should fail in minutes, not after the hour of production.
      SOURCE_STATEMENT_TIMEOUT_SECONDS: String(STEP_TIMEOUT_SECONDS),
      SUBSERVICE_TIMEOUT_SECONDS: String(STEP_TIMEOUT_SECONDS),
      METADATA_CONTAINER_NAME: HOST,
      PUBLISH_CONTAINER_NAME: HOST,
    };
    const portOf = (name: keyof typeof DEFAULT_PORTS) =>
      fixedPorts ? String(DEFAULT_PORTS[name]) : "0";
    const servers: Listening[] = [];
    cleanups.push(async () => {
      await Promise.all(servers.map(async (s) => {
        await s.server.shutdown();
        await s.close();
      }));
    });
    const metadata = await listenAs(
      "metadata",
      await buildMetadataService({ ...env, PORT: portOf("metadata") }, logSink),
    );
    servers.push(metadata);
    const publish = await listenAs(
      "publish",
      await buildPublishService({ ...env, PORT: portOf("publish") }, logSink),
    );
    servers.push(publish);
    let people: Record<string, string> = {};
    let identityProvider: string | null = null;
    let approvalPort = portOf("approval");
    if (dashboard) {
      if (approvalPort === "0") approvalPort = String(aFreePort());
      const baseUrl = `http://${HOST}:${approvalPort}`;
      const idp = await startDemoIdentityProvider({
        redirectUris: [`${baseUrl}/ui/callback`],
        port: fixedPorts ? DEMO_IDENTITY_PROVIDER_PORT : 0,
      });
      cleanups.push(async () => await idp[Symbol.asyncDispose]());
      identityProvider = idp.issuer;
      const policyFile = join(layout.run, "approval-policy.json");
      await writeFile(policyFile, JSON.stringify(DEMO_APPROVAL_POLICY, null, 2) + "\n");
      people = {
        APPROVAL_POLICY_FILE: policyFile,
        OIDC_ISSUER_URL: idp.issuer,
        OIDC_AUDIENCE: DEMO_UI_CLIENT_ID,
        UI_OIDC_CLIENT_ID: DEMO_UI_CLIENT_ID,
        UI_BASE_URL: baseUrl,
      };
    }
    const approval = await listenAs(
      "approval",
      await buildApprovalService({
        ...env,
        ...people,
        PORT: approvalPort,
        METADATA_CONTAINER_PORT: String(metadata.port),
        PUBLISH_CONTAINER_PORT: String(publish.port),
      }, logSink),
    );
    servers.push(approval);
    return {
      pgPort,
      ports: { approval: approval.port, metadata: metadata.port, publish: publish.port },
      startupMs: { pglite: pgliteMs, data: dataMs, services: performance.now() - t },
      identityProvider,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------------------
// The CLI's requests.

interface DatasetRequest {
  readonly name: string;
  readonly schema_name: string;
  readonly description: string;
  readonly tables: readonly { name: string; columns?: { name: string }[] }[] | null;
}

/** The two datasets of the demo project, as `resources/metadata/dataset_*.toml` would list them. */
const DATASETS: readonly DatasetRequest[] = [
  {
    name: "clinical",
    schema_name: DEMO_SCHEMAS[0],
    description: "Synthetic patients, admissions and laboratory results",
    tables: [
      {
        // The approved columns only: no NHS number, no names.
        name: "patients",
        columns: [
          "patient_id",
          "pseudo_id",
          "sex",
          "birth_date",
          "deceased",
          "weight_kg",
          "height_m",
          "registered_at",
          "notes",
        ].map((name) => ({ name })),
      },
      { name: "admissions" },
      { name: "lab_results" },
      { name: "patient_summary" },
    ],
  },
  {
    name: "reference",
    schema_name: DEMO_SCHEMAS[1],
    description: "Ward and laboratory test lookups",
    tables: null,
  },
];

function sourceOf(pgPort: number): Json {
  return {
    type: "postgresql",
    host_url: HOST,
    port: pgPort,
    database: "postgres",
    credentials: {
      provider: "AzureKeyVault",
      username_key: SOURCE_USER_KEY,
      password_key: SOURCE_PASSWORD_KEY,
    },
  };
}

function transferRequest(
  startTime: string,
  format: Format,
  pgPort: number,
  dataset: DatasetRequest,
): Json {
  return {
    project_name: PROJECT,
    project_start_time: startTime,
    destination: { name: "LSC", type: "filestore", format },
    source: sourceOf(pgPort),
    dataset: { ...dataset, staging_path: null, publish_path: null },
  };
}

/** A gateway reply other than 200, with its envelope. */
class StepFailed extends Error {
  constructor(
    readonly step: string,
    readonly status: number,
    readonly body: unknown,
  ) {
    super(`${step} answered HTTP ${status}`);
  }
}

/** Posts to the gateway as the CLI does; returns `payload` of a 200, else throws {@link StepFailed}. */
async function callGateway(
  gateway: string,
  key: string,
  path: string,
  body: Json,
): Promise<{ payload: Json; ms: number }> {
  const t = performance.now();
  const res = await fetch(`${gateway}/${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-api-key": key },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout((STEP_TIMEOUT_SECONDS + 30) * 1000),
  });
  const text = await res.text();
  let json: unknown = text;
  try {
    json = JSON.parse(text);
  } catch {
    // Not JSON: shown as text.
  }
  if (res.status !== 200) throw new StepFailed(`POST /${path}`, res.status, json);
  const payload = (json as { payload?: unknown }).payload;
  return { payload: (payload ?? json) as Json, ms: performance.now() - t };
}

/** Reads a reply's JSON, or its text when it is not JSON. */
async function bodyOf(res: Response): Promise<unknown> {
  const text = await res.text();
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** A GET through the gateway; returns `payload` of a 200, else throws {@link StepFailed}. */
async function getFromGateway(gateway: string, key: string, path: string): Promise<Json> {
  const res = await fetch(`${gateway}${path}`, {
    headers: { "x-api-key": key },
    signal: AbortSignal.timeout(30_000),
  });
  const json = await bodyOf(res);
  if (res.status !== 200) throw new StepFailed(`GET ${path}`, res.status, json);
  return (json as { payload: Json }).payload;
}

/**
 * Packages one dataset as a run: `POST /project/package` with `Prefer: respond-async` (202 and the run),
 * then follows `GET /runs/{id}/events` (Server-Sent Events; reconnecting with `Last-Event-ID` if the
 * stream breaks off before the run stops), printing a progress line per table, and finally reads the
 * run: its outcome is the reply the synchronous call gives.
 */
async function packageWithProgress(
  gateway: string,
  key: string,
  request: Json,
): Promise<{ payload: Json; ms: number }> {
  const t = performance.now();
  const res = await fetch(`${gateway}/project/package`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-api-key": key,
      "prefer": "respond-async",
    },
    body: JSON.stringify(request),
    signal: AbortSignal.timeout(30_000),
  });
  const accepted = await bodyOf(res);
  if (res.status !== 202) throw new StepFailed("POST /project/package", res.status, accepted);
  const location = res.headers.get("location") ?? "";
  const printer = new ProgressPrinter(writeOut, {
    indent: "     ",
    terminal: Deno.stdout.isTerminal(),
  });
  let lastEventId: string | null = null;
  let run = (accepted as { payload: RunView }).payload;
  const deadline = AbortSignal.timeout((STEP_TIMEOUT_SECONDS + 30) * 1000);
  try {
    while (!FINAL_RUN_STATES.includes(run.state)) {
      deadline.throwIfAborted();
      const events: Response = await fetch(`${gateway}${location}/events`, {
        headers: {
          "x-api-key": key,
          accept: "text/event-stream",
          ...(lastEventId === null ? {} : { "last-event-id": lastEventId }),
        },
        signal: deadline,
      });
      if (events.status !== 200 || events.body === null) {
        throw new StepFailed(`GET ${location}/events`, events.status, await bodyOf(events));
      }
      try {
        const stream: AsyncIterable<ServerSentEvent> = readServerSentEvents(events.body);
        for await (const event of stream) {
          if (event.event !== "run") continue;
          lastEventId = event.id;
          run = JSON.parse(event.data) as RunView;
          printer.show(run);
        }
      } catch (e) {
        if (deadline.aborted) throw e;
        // The stream broke off: reconnect with Last-Event-ID.
      }
    }
  } finally {
    printer.end();
  }
  const final = await getFromGateway(gateway, key, location) as unknown as RunView;
  const outcome = final.outcome;
  if (outcome === null || outcome.status !== 200) {
    throw new StepFailed(`run ${final.id} (${final.state})`, outcome?.status ?? 0, outcome?.body);
  }
  return {
    payload: (outcome.body as { payload: Json }).payload,
    ms: performance.now() - t,
  };
}

const ms = (n: number) => `${Math.round(n)} ms`;
const count = (n: number, noun: string) => `${n} ${noun}${n === 1 ? "" : "s"}`;

// ---------------------------------------------------------------------------------------------------------
// The demo run.

interface TableDescription {
  name: string;
  description: string | null;
  primary_key?: string[];
  columns: { name: string; datatype: string }[];
}

interface PublishedFile {
  file_path: string;
  hash_value: string;
  total_bytes: number;
}

async function runDemo(
  layout: Layout,
  stack: Stack,
  format: Format,
  startTime: string,
): Promise<void> {
  const gateway = `http://${HOST}:${stack.ports.approval}`;
  const key = (await readFile(layout.gatewayKeyFile, "utf8")).trim();
  const requests = DATASETS.map((d) => transferRequest(startTime, format, stack.pgPort, d));

  say(`1. validate  POST /project/validate, once per dataset (cr8tor validate)`);
  for (const request of requests) {
    const { payload, ms: took } = await callGateway(gateway, key, "project/validate", request);
    const tables = payload.tables as TableDescription[];
    const schema = payload.schema_name as string;
    const size = count(tables.length, "table");
    say(`   dataset ${payload.name}: schema ${schema}, ${size} (${ms(took)})`);
    for (const table of tables) {
      const pk = table.primary_key?.length ? `key (${table.primary_key.join(", ")})` : "no key";
      const about = table.description === null ? "" : `  "${table.description}"`;
      say(`     ${schema}.${table.name}, ${count(table.columns.length, "column")}, ${pk}${about}`);
      for (const line of wrap(table.columns.map((c) => `${c.name} ${c.datatype}`), "         ")) {
        say(line);
      }
    }
  }

  say();
  say(
    `2. package   POST /project/package, once per dataset (cr8tor stage-transfer), format ${format}`,
  );
  for (const request of requests) {
    const { payload, ms: took } = await packageWithProgress(gateway, key, request);
    const files = (payload.data_retrieved as { file_path?: string; table_name?: string }[])
      .map((f) => f.file_path ?? f.table_name ?? "?");
    const dataset = (request.dataset as Json).name;
    say(`   dataset ${dataset}: ${count(files.length, "file")} staged (${ms(took)})`);
    for (const file of files) say(`     ${file}`);
  }

  say();
  say(`3. publish   POST /project/publish, once per project (cr8tor publish)`);
  const { payload, ms: took } = await callGateway(gateway, key, "project/publish", {
    project_name: PROJECT,
    project_start_time: startTime,
    destination: { name: "LSC", type: "filestore", format },
  });
  const published = payload.data_published as PublishedFile[];
  const production = join(layout.storage, "production", PROJECT, startTime);
  say(`   ${count(published.length, "file")} published to ${shown(production)} (${ms(took)})`);
  const width = Math.max(...published.map((f) => String(f.total_bytes).length), 5);
  say(`     ${"SHA-512".padEnd(128)}  ${"bytes".padStart(width)}  file`);
  for (const f of published) {
    say(`     ${f.hash_value}  ${String(f.total_bytes).padStart(width)}  ${f.file_path}`);
  }

  // The checksums the service returned must be the bag's own manifest lines.
  const manifest = new Map(
    (await readFile(join(production, "manifest-sha512.txt"), "utf8")).split("\n")
      .filter((l) => l !== "")
      .map((l) => {
        const [hash, ...path] = l.split(/\s+/);
        return [path.join(" "), hash] as const;
      }),
  );
  const mismatched = published.filter((f) => manifest.get(f.file_path) !== f.hash_value);
  if (mismatched.length > 0 || manifest.size !== published.length) {
    throw new Error(
      `The publish reply does not match ${
        join(production, "manifest-sha512.txt")
      }: ${mismatched.length} checksums differ, the manifest lists ${manifest.size} files, the reply ${published.length}`,
    );
  }
  say(`   the reply's checksums are the lines of the bag's manifest-sha512.txt`);

  say();
  say(
    `4. runs      GET /runs?project=${PROJECT}, the runs API (every package and publish is a run)`,
  );
  const page = await getFromGateway(gateway, key, `/runs?project=${PROJECT}&limit=10`);
  for (const run of (page.runs as RunView[]).toReversed()) {
    const took = run.started_at !== null && run.finished_at !== null
      ? ` in ${ms(Date.parse(run.finished_at) - Date.parse(run.started_at))}`
      : "";
    const what = run.action === "package"
      ? `${run.dataset.schema_name}, ${count(run.tables.length, "table")}`
      : `${count(published.length, "file")}`;
    say(`   ${run.id}  ${run.action.padEnd(7)}  ${run.state}${took}  (${what})`);
  }
  say();
  say("Verify the bag (BagIt 1.0, SHA-512) yourself:");
  say(
    `  cd ${production} && sha512sum --check manifest-sha512.txt && sha512sum --check tagmanifest-sha512.txt`,
  );
  say();
  say(
    "Try the runs API on a running stack: `deno task start` prints the gateway and its key file, then",
  );
  say(`  curl -s "$GATEWAY/runs?project=${PROJECT}&limit=5" -H "x-api-key: $(cat $KEY_FILE)"`);
  say(`  curl -sN "$GATEWAY/runs/$RUN_ID/events" -H "x-api-key: $(cat $KEY_FILE)"`);
}

// ---------------------------------------------------------------------------------------------------------
// --serve

function printServeBanner(layout: Layout, stack: Stack, format: Format, startTime: string): void {
  const url = (port: number) => `http://${HOST}:${port}`;
  const keyFile = layout.gatewayKeyFile;
  const clinical = { ...DATASETS[0]!, tables: null };
  const body = transferRequest(startTime, format, stack.pgPort, clinical);
  say("CR8TOR Publisher is running with a demo configuration:");
  say(
    `  approval (gateway)  ${url(stack.ports.approval)}   docs ${url(stack.ports.approval)}/docs`,
  );
  say(
    `  metadata            ${url(stack.ports.metadata)}   docs ${url(stack.ports.metadata)}/docs`,
  );
  say(`  publish             ${url(stack.ports.publish)}   docs ${url(stack.ports.publish)}/docs`);
  say(
    `  source database     PGlite (PostgreSQL in WebAssembly) on ${HOST}:${stack.pgPort}, database postgres, schemas ${
      DEMO_SCHEMAS.join(", ")
    }`,
  );
  say(`  run folder          ${shown(layout.run)}`);
  say(
    `  secrets             ${shown(layout.secrets)} (keys and source credentials, one file each)`,
  );
  say(
    `  allowed sources     ${
      shown(join(layout.run, "allowed-sources.json"))
    } (only the PGlite database)`,
  );
  say(`  filestore LSC       ${shown(layout.storage)}/{staging,production}`);
  say(`  gateway key         ${keyFile}`);
  say();
  say("Validate the clinical dataset through the gateway, as `cr8tor validate` does:");
  say(
    `  curl -s ${url(stack.ports.approval)}/project/validate -H 'content-type: application/json' ` +
      `-H "x-api-key: $(cat ${keyFile})" -d '${JSON.stringify(body)}'`,
  );
  say(
    "Then POST the same body to /project/package, and its project_name, project_start_time and " +
      "destination to /project/publish.",
  );
  say();
  const auth = `-H "x-api-key: $(cat ${keyFile})"`;
  say("Or package as a run and watch it (the runs API, through the gateway):");
  say(
    `  curl -si ${url(stack.ports.approval)}/project/package -H 'prefer: respond-async' ` +
      `-H 'content-type: application/json' ${auth} -d '<the body above>'   # 202, Location: /runs/{id}`,
  );
  say(
    `  curl -sN ${
      url(stack.ports.approval)
    }/runs/{id}/events ${auth}   # Server-Sent Events until it stops`,
  );
  say(`  curl -s '${url(stack.ports.approval)}/runs?project=${PROJECT}&limit=5' ${auth}`);
  say(`  curl -s -X POST ${url(stack.ports.approval)}/runs/{id}/cancel ${auth}`);
  say();
  say("Point the CR8TOR CLI at the gateway:");
  say(
    `  APPROVALS_HOST=http://${HOST} APPROVALS_PORT=${stack.ports.approval} APPROVALS_API_TOKEN="$(cat ${keyFile})"`,
  );
  say(
    `  access.toml: [source] type="postgresql" host_url="${HOST}" port=${stack.pgPort} database="postgres"; ` +
      `[credentials] username_key="${SOURCE_USER_KEY}" password_key="${SOURCE_PASSWORD_KEY}"`,
  );
  say();
  if (stack.identityProvider !== null) {
    say("Dashboard (approvers and operators sign in; the package and publish of LSC are gated):");
    say(`  ${url(stack.ports.approval)}/ui/`);
    say(
      `  DEMO identity provider ${stack.identityProvider} (loopback only; password "${DEMO_PASSWORD}" for everyone):`,
    );
    for (const person of DEMO_PEOPLE) {
      say(`    ${person.login.padEnd(6)} ${person.name} [${person.roles.join(", ")}]`);
    }
    say(`  Approval policy ${shown(join(layout.run, "approval-policy.json"))}`);
    say();
  }
  say("Service logs follow (JSON lines). Ctrl-C stops everything.");
}

async function serveUntilSignal(stack: Stack): Promise<void> {
  const { promise, resolve } = Promise.withResolvers<void>();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    try {
      Deno.addSignalListener(signal, () => resolve());
    } catch {
      // SIGTERM cannot be listened to on Windows.
    }
  }
  await promise;
  say("Stopping.");
  await stack.stop();
}

// ---------------------------------------------------------------------------------------------------------

const USAGE = `Usage: deno task demo [--format csv|duckdb] [--ports auto|default] [--dir PATH]
       deno task start [--format csv|duckdb] [--ports auto|default] [--dir PATH]   (= demo --serve)`;

async function main(args: string[]): Promise<number> {
  let options;
  try {
    options = parseArgs({
      args,
      options: {
        format: { type: "string", default: "csv" },
        serve: { type: "boolean", default: false },
        ports: { type: "string" },
        dir: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (e) {
    say(`${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (options.help) {
    say(USAGE);
    return 0;
  }
  const format = options.format;
  const ports = options.ports ?? (options.serve ? "default" : "auto");
  if (format !== "csv" && format !== "duckdb") {
    say(`--format must be csv or duckdb, not ${format}\n${USAGE}`);
    return 2;
  }
  if (ports !== "auto" && ports !== "default") {
    say(`--ports must be auto or default, not ${ports}\n${USAGE}`);
    return 2;
  }

  const started = performance.now();
  const startTime = startTimeOf(new Date());
  let layout: Layout;
  let stack: Stack;
  let restoreLogs = () => {};
  let logSink: LogSink = stdoutSink;
  try {
    layout = await writeConfiguration(await createRunFolder(options.dir, startTime));
    if (!options.serve) {
      const logFile = await Deno.open(join(layout.run, "services.log"), {
        create: true,
        append: true,
      });
      logSink = fileSink(logFile);
      restoreLogs = () => logFile.close();
    }
    stack = await startStack(layout, ports === "default", logSink, options.serve);
  } catch (e) {
    restoreLogs();
    if (e instanceof ConfigError) {
      say(e.message);
      return 1;
    }
    throw e;
  }
  const { pglite, data, services } = stack.startupMs;
  if (options.serve) {
    printServeBanner(layout, stack, format, startTime);
    await serveUntilSignal(stack);
    return 0;
  }

  say(`CR8TOR Publisher demo: project ${PROJECT}, start time ${startTime}, format ${format}`);
  say(`  run folder  ${shown(layout.run)} (secrets/, storage/lsc/, state/, services.log)`);
  say(
    `  source      PGlite on ${HOST}:${stack.pgPort}, schemas ${DEMO_SCHEMAS.join(", ")} ` +
      `(PGlite ${ms(pglite)}, data ${ms(data)})`,
  );
  say(
    `  services    approval :${stack.ports.approval}, metadata :${stack.ports.metadata}, ` +
      `publish :${stack.ports.publish} (${ms(services)})`,
  );
  say();
  let code = 0;
  try {
    await runDemo(layout, stack, format, startTime);
    say();
    say(
      `Done in ${ms(performance.now() - started)}. Remove the run folder when done: rm -rf ${
        shown(layout.run)
      }`,
    );
  } catch (e) {
    code = 1;
    say();
    if (e instanceof StepFailed) {
      say(`FAILED: ${e.message}:`);
      say(JSON.stringify(e.body, null, 2));
    } else {
      say(`FAILED: ${(e as Error).message}`);
    }
    say(`Service logs: ${shown(join(layout.run, "services.log"))}`);
  } finally {
    await stack.stop();
    restoreLogs();
  }
  return code;
}

if (import.meta.main) Deno.exit(await main(Deno.args));

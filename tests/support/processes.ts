/**
 * Starting the services as real processes for end-to-end tests, with the same permissions as their
 * `start:<service>` tasks.
 *
 * @module
 */
import { dirname, join } from "node:path";
import type { AllowedSource } from "../../domain/allowed_sources.ts";
import { runtimeFlagsOf } from "../../tools/compile.ts";
import { LOCAL_DATABASES_WITHOUT_TLS } from "./services.ts";

const ROOT = new URL("../../", import.meta.url);
const TASKS = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT))).tasks as Record<
  string,
  string
>;

/** A running service process. */
export interface ServiceProcess extends AsyncDisposable {
  readonly pid: number;
  readonly port: number;
  readonly url: string;
  /** Every log line written so far. */
  readonly logs: string[];
  /** Settles with the exit code once the process has ended and its output is read. */
  readonly exited: Promise<number>;
  /** Sends SIGTERM (once) and waits for the process to end. */
  stop(): Promise<void>;
}

/** Environment every child needs to find Deno's cache. */
function baseEnv(): Record<string, string> {
  const env: Record<string, string> = { NO_COLOR: "1" };
  for (const name of ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return env;
}

let stateRootDir: string | undefined;

/** One folder for the state directories of this test process's services, removed when it ends. */
function stateRoot(): string {
  if (stateRootDir !== undefined) return stateRootDir;
  const root = Deno.makeTempDirSync({ prefix: "cr8tor_states_" });
  stateRootDir = root;
  globalThis.addEventListener("unload", () => {
    try {
      Deno.removeSync(root, { recursive: true });
    } catch {
      // Best effort: it is a temporary folder.
    }
  });
  return root;
}

/**
 * Starts a service with `env` on top of what every child needs. The local PostgreSQL and MariaDB have no
 * TLS, so the database TLS opt-outs are set explicitly ({@link LOCAL_DATABASES_WITHOUT_TLS}); a test of
 * TLS sets its own values in `env`.
 */
function spawn(service: string, env: Record<string, string>): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", ...runtimeFlagsOf(TASKS, service), `apps/${service}/main.ts`],
    cwd: ROOT,
    // Each process keeps its runs in a state directory of its own unless the test shares one.
    env: {
      ...baseEnv(),
      PORT: "0",
      STATE_DIR: Deno.makeTempDirSync({ dir: stateRoot(), prefix: "state_" }),
      ...LOCAL_DATABASES_WITHOUT_TLS,
      ...env,
    },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buffered = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    let newline: number;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      yield buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
    }
  }
  if (buffered !== "") yield buffered;
}

function parseEvent(line: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(line);
  } catch {
    return undefined;
  }
}

/** Starts a service on a free port and waits until it listens. */
export async function startService(
  service: string,
  env: Record<string, string>,
): Promise<ServiceProcess> {
  const child = spawn(service, env);
  const logs: string[] = [];
  const stderr = new Response(child.stderr).text();
  const reader = lines(child.stdout);
  let port: number | undefined;
  // Not `for await ... break`: breaking would close the generator and with it the child's stdout.
  for (let next = await reader.next(); !next.done; next = await reader.next()) {
    logs.push(next.value);
    const event = parseEvent(next.value);
    if (event?.event === "listening") {
      port = event.port as number;
      break;
    }
  }
  if (port === undefined) {
    const status = await child.status;
    throw new Error(
      `${service} exited with ${status.code} before listening: ${logs.join("\n")}${await stderr}`,
    );
  }
  const drained = (async () => {
    for await (const line of reader) logs.push(line);
  })();
  const exited = (async () => {
    const status = await child.status;
    await drained;
    await stderr;
    return status.code;
  })();
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    try {
      child.kill("SIGTERM");
    } catch {
      // already ended
    }
    await exited;
  };
  return {
    pid: child.pid,
    port,
    url: `http://127.0.0.1:${port}`,
    logs,
    exited,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/** Runs a service that is expected to refuse to start; returns its exit code and output. */
export async function startFailing(
  service: string,
  env: Record<string, string>,
): Promise<{ code: number; output: string }> {
  const child = spawn(service, env);
  const [status, stdout, stderr] = await Promise.all([
    child.status,
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
  ]);
  return { code: status.code, output: stdout + stderr };
}

/** Fresh API keys for the three services, by the secret names they read them from. */
export function newServiceKeys(): {
  approvalserviceapikey: string;
  metadataserviceapikey: string;
  publishserviceapikey: string;
} {
  return {
    approvalserviceapikey: `approval-${crypto.randomUUID()}`,
    metadataserviceapikey: `metadata-${crypto.randomUUID()}`,
    publishserviceapikey: `publish-${crypto.randomUUID()}`,
  };
}

/** The three services as separate processes, the gateway pointed at the other two. */
export interface ServiceStack {
  readonly metadata: ServiceProcess;
  readonly publish: ServiceProcess;
  readonly approval: ServiceProcess;
}

/** Writes an allow-list file (`ALLOWED_SOURCES_FILE`) with these entries into `dir`; returns its path. */
export async function writeAllowList(
  dir: string,
  sources: readonly AllowedSource[],
): Promise<string> {
  const path = join(dir, `allowed-sources-${crypto.randomUUID()}.json`);
  await Deno.writeTextFile(path, JSON.stringify({ sources }));
  return path;
}

/** What a test stack needs beyond the defaults. */
export interface StackOptions {
  /** The secrets directory every service reads. */
  readonly secrets: string;
  /** The base of the filestore `LSC`. */
  readonly storage: string;
  /** The sources metadata and publish may reach; written to an allow-list file next to `secrets`. */
  readonly allowedSources: readonly AllowedSource[];
  /** More environment for the publish service. */
  readonly publishEnv?: Record<string, string>;
  /** More environment for all three services. */
  readonly env?: Record<string, string>;
  /** More environment for the approval service (the gateway). */
  readonly approvalEnv?: Record<string, string>;
}

/**
 * Starts metadata, publish and approval on free ports. Each started process is pushed to `started` as
 * soon as it listens, so the caller can stop them even if a later one fails to start.
 */
export async function startStack(
  options: StackOptions,
  started: ServiceProcess[],
): Promise<ServiceStack> {
  const allowList = await writeAllowList(dirname(options.secrets), options.allowedSources);
  const common = {
    SECRETS_MNT_PATH: options.secrets,
    ALLOWED_SOURCES_FILE: allowList,
    ...options.env,
  };
  const metadata = await startService("metadata", common);
  started.push(metadata);
  const publish = await startService("publish", {
    ...common,
    TARGET_STORAGE_ACCOUNT_LSC_SDE_MNT_PATH: options.storage,
    ...options.publishEnv,
  });
  started.push(publish);
  const approval = await startService("approval", {
    ...common,
    METADATA_CONTAINER_NAME: "127.0.0.1",
    METADATA_CONTAINER_PORT: String(metadata.port),
    PUBLISH_CONTAINER_NAME: "127.0.0.1",
    PUBLISH_CONTAINER_PORT: String(publish.port),
    ...options.approvalEnv,
  });
  started.push(approval);
  return { metadata, publish, approval };
}

/** A service's reply, parsed. */
export interface JsonReply {
  readonly status: number;
  // deno-lint-ignore no-explicit-any
  readonly json: Record<string, any>;
}

/** POSTs `body` as JSON with an API key (and any further headers) and reads the JSON reply. */
export async function postToService(
  url: string,
  body: unknown,
  apiKey: string,
  headers: Record<string, string> = {},
): Promise<JsonReply> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", "x-api-key": apiKey, ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

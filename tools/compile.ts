/**
 * `deno task compile`: builds `dist/cr8tor-approval`, `dist/cr8tor-metadata`, `dist/cr8tor-publish` and
 * `dist/cr8tor-operator`.
 *
 * Each binary gets exactly the permissions (and V8 flags: the publish service's heap cap) of its
 * `start:<service>` task in deno.json, the one place they are written (the end-to-end tests start the services with the same flags), so only publish can load a
 * native library (`--allow-ffi`, for DuckDB). Paths, hosts and ports cannot be narrowed here: they are
 * the deployment's configuration (`SECRETS_MNT_PATH`, the allow-list, `PORT`), read at run time, while
 * `deno compile` fixes flags at build time. The operating system narrows them instead (the systemd units
 * in `deploy/systemd/`, a read-only container).
 *
 * What goes into a binary:
 * - only the npm packages its module graph reaches (`--exclude-unused-npm`), so the gateway does not carry
 *   DuckDB or PGlite;
 * - publish is built `--self-extracting`: DuckDB's addon `duckdb.node` loads `libduckdb.so` from its own
 *   directory (`RUNPATH $ORIGIN`), and a binary that extracts only the `.node` file to a temporary
 *   directory cannot find it (denoland/deno#36626). A self-extracting binary unpacks its files on first
 *   run next to itself (`<binary>.fs/`) or, when that directory is not writable, under
 *   `$XDG_DATA_HOME/cr8tor-publish/`;
 * - the worker modules it starts ({@link WORKER_MODULES}, `--include`), which `deno compile` does not find
 *   by itself;
 * - the musl builds of native packages (DuckDB's is 70 MB) are left out: the binaries are for glibc Linux;
 * - so are the test folders of {@link UNEMBEDDABLE_TEST_DATA}: `deno compile` 2.9.6 overflows its stack on
 *   bintrees' (prom-client → tdigest → bintrees) 2 MB extension-less `test/perf/100k`.
 *
 * Usage: `deno task compile [--service approval|metadata|publish|operator]... [--out-dir dist] [--no-check]`.
 * Offline, set `DENORT_BIN` to a `denort` binary of the same Deno version (2.9.6); `deno compile` uses it
 * instead of downloading one.
 *
 * @module
 */
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";

/** The services, in build order. */
export const SERVICES = ["approval", "metadata", "publish"] as const;

/** One of {@link SERVICES}. */
export type Service = typeof SERVICES[number];

/** Every binary: the services, and the AnalyticsWorkspaceDataSource operator (`docs/operator.md`). */
export const BINARIES = [...SERVICES, "operator"] as const;

/** One of {@link BINARIES}. */
export type Binary = typeof BINARIES[number];

/** Services whose binary must unpack its files to disk to load a native addon with sibling libraries. */
const SELF_EXTRACTING: ReadonlySet<Binary> = new Set(["publish"]);

/**
 * Worker modules a binary starts (`new Worker(new URL(...))`), which `deno compile` embeds only when
 * named with `--include`: the publish service hashes the CSV files it writes on a worker
 * (`adapters/filesystem/sha512.ts`).
 */
export const WORKER_MODULES: Readonly<Record<Binary, readonly string[]>> = {
  approval: [],
  metadata: [],
  publish: ["adapters/filesystem/sha512_worker.ts"],
  operator: [],
};

/** The `--allow-*` flags of a service's start task. */
export function permissionsOf(tasks: Record<string, string>, service: string): string[] {
  const task = tasks[`start:${service}`];
  if (task === undefined) throw new Error(`Cannot find task "start:${service}" in deno.json`);
  return task.split(/\s+/).filter((arg) => arg.startsWith("--allow-"));
}

/**
 * The runtime flags of a service's start task that a binary or an image must carry too: its `--allow-*`
 * flags and its `--v8-flags` (heap settings, see docs/benchmarks.md).
 */
export function runtimeFlagsOf(tasks: Record<string, string>, service: string): string[] {
  const task = tasks[`start:${service}`];
  if (task === undefined) throw new Error(`Cannot find task "start:${service}" in deno.json`);
  return task.split(/\s+/).filter((arg) =>
    arg.startsWith("--allow-") || arg.startsWith("--v8-flags=")
  );
}

/** How {@link compileArgs} builds a binary. */
export interface CompileOptions {
  /** Where the binaries go. */
  readonly outDir: string;
  /** Type-check before compiling (the default of `deno compile`). */
  readonly check: boolean;
  /** Files or directories to leave out of the binary (`--exclude`). */
  readonly exclude: readonly string[];
}

/** The `deno compile` arguments that build one service's binary. */
export function compileArgs(
  tasks: Record<string, string>,
  service: Binary,
  options: CompileOptions,
): string[] {
  return [
    "compile",
    ...runtimeFlagsOf(tasks, service),
    "--frozen",
    "--exclude-unused-npm",
    ...(SELF_EXTRACTING.has(service) ? ["--self-extracting"] : []),
    ...WORKER_MODULES[service].flatMap((path) => ["--include", path]),
    ...options.exclude.flatMap((path) => ["--exclude", path]),
    ...(options.check ? [] : ["--no-check"]),
    "--output",
    join(options.outDir, `cr8tor-${service}`),
    `apps/${service}/main.ts`,
  ];
}

/** The npm cache directory `deno info` reports. */
export async function npmCacheDir(): Promise<string> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    throw new Error(`Cannot run deno info: ${new TextDecoder().decode(stderr).trim()}`);
  }
  const info = JSON.parse(new TextDecoder().decode(stdout)) as { npmCache?: unknown };
  if (typeof info.npmCache !== "string") throw new Error("Cannot find npmCache in deno info");
  return info.npmCache;
}

/**
 * The directories of the musl builds of native packages in the npm cache (`@duckdb/node-bindings-linux-x64-musl`
 * and the like), which no glibc binary loads.
 */
export async function muslBuilds(npmCache: string): Promise<string[]> {
  const registry = join(npmCache, "registry.npmjs.org");
  const subdirs = async (dir: string) => {
    try {
      return (await readdir(dir, { withFileTypes: true })).filter((e) => e.isDirectory())
        .map((e) => e.name);
    } catch {
      return [];
    }
  };
  const packages: string[] = [];
  for (const name of await subdirs(registry)) {
    if (!name.startsWith("@")) packages.push(name);
    else {for (const scoped of await subdirs(join(registry, name))) {
        packages.push(`${name}/${scoped}`);
      }}
  }
  const dirs: string[] = [];
  for (const name of packages.filter((p) => p.endsWith("-musl"))) {
    for (const version of await subdirs(join(registry, name))) {
      dirs.push(join(registry, name, version));
    }
  }
  return dirs.sort();
}

/** npm packages (name/version) whose `test/` folder `deno compile` cannot embed; no code reads it. */
export const UNEMBEDDABLE_TEST_DATA = ["bintrees/1.0.2"];

/** The `test/` folders of {@link UNEMBEDDABLE_TEST_DATA} in the npm cache. */
export function unembeddableTestData(npmCache: string): string[] {
  return UNEMBEDDABLE_TEST_DATA.map((pkg) => join(npmCache, "registry.npmjs.org", pkg, "test"));
}

async function main(args: string[]): Promise<number> {
  const flags = parseArgs({
    args,
    options: {
      service: { type: "string", multiple: true },
      "out-dir": { type: "string", default: "dist" },
      "no-check": { type: "boolean", default: false },
    },
  }).values;
  const chosen = flags.service ?? [...BINARIES];
  const unknown = chosen.filter((s) => !(BINARIES as readonly string[]).includes(s));
  if (unknown.length > 0) {
    throw new TypeError(
      `Cannot compile service "${unknown[0]}": must be one of ${BINARIES.join(", ")}`,
    );
  }
  const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  const options: CompileOptions = {
    outDir: flags["out-dir"],
    check: !flags["no-check"],
    exclude: [
      ...await muslBuilds(await npmCacheDir()),
      ...unembeddableTestData(await npmCacheDir()),
    ],
  };
  await Deno.mkdir(options.outDir, { recursive: true });
  for (const service of chosen as Binary[]) {
    const { code } = await new Deno.Command(Deno.execPath(), {
      args: compileArgs(config.tasks, service, options),
      cwd: new URL("..", import.meta.url),
      stdout: "inherit",
      stderr: "inherit",
    }).output();
    if (code !== 0) return code;
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));

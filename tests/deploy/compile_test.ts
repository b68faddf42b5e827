/**
 * `tools/compile.ts`: the arguments it gives `deno compile`, what ends up inside the publish binary, and,
 * where a `denort` runtime is at hand (`DENORT_BIN`), a built binary that starts and answers `/health`.
 *
 * `deno compile` appends the program to a copy of the runtime named by `DENORT_BIN` (or downloads one).
 * Any file will do for the embedding check, which only reads what `deno compile` lists, so that test uses
 * the `deno` binary itself as a stand-in and needs no download; the binary it writes cannot run.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  BINARIES,
  compileArgs,
  muslBuilds,
  npmCacheDir,
  permissionsOf,
  type Service,
  WORKER_MODULES,
} from "../../tools/compile.ts";
import { SHA512_WORKER } from "../../adapters/filesystem/sha512.ts";
import { readRepoFile, repoPath } from "./_deploy.ts";

const tasks = JSON.parse(await readRepoFile("deno.json")).tasks as Record<string, string>;
const LINUX_X64 = Deno.build.os === "linux" && Deno.build.arch === "x86_64";
const DENORT = Deno.env.get("DENORT_BIN");
const HAS_DENORT = DENORT !== undefined && DENORT !== "" &&
  (() => {
    try {
      return Deno.statSync(DENORT).isFile;
    } catch {
      return false;
    }
  })();

/** Runs `deno task compile` for one service into `outDir`; returns its output. */
async function compile(
  service: Service,
  outDir: string,
  denort: string,
): Promise<{ code: number; output: string }> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-env",
      "--allow-read",
      "--allow-write",
      "--allow-run",
      "tools/compile.ts",
      "--service",
      service,
      "--out-dir",
      outDir,
      "--no-check",
    ],
    cwd: repoPath("."),
    env: { DENORT_BIN: denort, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { code, output: decoder.decode(stdout) + decoder.decode(stderr) };
}

Deno.test("compileArgs() gives each binary its start task's permissions, and only publish native code", () => {
  const options = { outDir: "dist", check: true, exclude: ["/cache/x-musl/1.0.0"] };
  for (const service of BINARIES) {
    const args = compileArgs(tasks, service, options);
    const allows = args.filter((a) => a.startsWith("--allow-"));
    assert.deepStrictEqual(allows, permissionsOf(tasks, service), service);
    assert.ok(allows.length > 0, service);
    for (const flag of ["--allow-all", "-A", "--allow-run", "--allow-import"]) {
      assert.ok(!args.some((a) => a === flag || a.startsWith(`${flag}=`)), `${service}: ${flag}`);
    }
    assert.equal(args.includes("--allow-ffi"), service === "publish", `${service}: --allow-ffi`);
    // The heap settings of its start task (docs/benchmarks.md) are baked in.
    assert.deepStrictEqual(
      args.filter((a) => a.startsWith("--v8-flags=")),
      tasks[`start:${service}`]!.match(/--v8-flags=\S+/g) ?? [],
      service,
    );
    assert.equal(args.includes("--self-extracting"), service === "publish", service);
    assert.ok(args.includes("--exclude-unused-npm"), service);
    assert.ok(args.includes("--frozen"), service);
    assert.ok(!args.includes("--no-check"), service);
    assert.deepStrictEqual(args.slice(-3), [
      "--output",
      `dist/cr8tor-${service}`,
      `apps/${service}/main.ts`,
    ]);
    assert.deepStrictEqual(args.slice(args.indexOf("--exclude"), args.indexOf("--exclude") + 2), [
      "--exclude",
      "/cache/x-musl/1.0.0",
    ]);
  }
  assert.ok(compileArgs(tasks, "approval", { ...options, check: false }).includes("--no-check"));
});

Deno.test("start:all runs the services with the publish service's V8 flags", () => {
  // One process serves all three, packages included, so it needs publish's heap and sweeping settings.
  const flags = (task: string) => tasks[task]!.match(/--v8-flags=\S+/g) ?? [];
  assert.ok(flags("start:publish").length > 0);
  assert.deepStrictEqual(flags("start:all"), flags("start:publish"));
});

/** The modules started as workers (`new Worker(...)` beside `new URL("./x.ts", import.meta.url)`), repo-relative. */
async function workerModules(): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for await (const entry of Deno.readDir(repoPath(dir))) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) await walk(path);
      else if (entry.name.endsWith(".ts") && !entry.name.endsWith("_test.ts")) {
        const text = await readRepoFile(path);
        if (!text.includes("new Worker(")) continue;
        for (
          const m of text.matchAll(/new URL\(\s*"(\.\.?\/[^"]+\.ts)",\s*import\.meta\.url\s*\)/g)
        ) {
          found.push(new URL(m[1]!, `file:///${path}`).pathname.slice(1));
        }
      }
    }
  };
  for (const dir of ["domain", "ports", "application", "adapters", "apps"]) await walk(dir);
  return found.sort();
}

Deno.test("compileArgs() includes every worker module of the services (deno compile does not find them)", async () => {
  const workers = await workerModules();
  assert.deepStrictEqual(workers, ["adapters/filesystem/sha512_worker.ts"]);
  assert.equal(SHA512_WORKER.pathname, repoPath(workers[0]!));
  const options = { outDir: "dist", check: true, exclude: [] };
  const includes = (service: Service | "operator") => {
    const args = compileArgs(tasks, service, options);
    return args.flatMap((a, i) => a === "--include" ? [args[i + 1]!] : []);
  };
  assert.deepStrictEqual(includes("publish"), workers);
  assert.deepStrictEqual(WORKER_MODULES.publish, workers);
  for (const service of ["approval", "metadata", "operator"] as const) {
    assert.deepStrictEqual(includes(service), [], service);
  }
  for (const path of workers) assert.ok((await Deno.stat(repoPath(path))).isFile, path);
});

Deno.test("muslBuilds() lists the version folders of musl builds only", async () => {
  const cache = await Deno.makeTempDir({ prefix: "cr8tor-npm-cache-" });
  try {
    const registry = join(cache, "registry.npmjs.org");
    for (
      const dir of [
        "@duckdb/node-bindings-linux-x64/1.5.5",
        "@duckdb/node-bindings-linux-x64-musl/1.5.5",
        "@duckdb/node-bindings-linux-x64-musl/1.5.6",
        "lz4-musl/0.1.0",
        "hono/4.13.19",
      ]
    ) await Deno.mkdir(join(registry, dir), { recursive: true });
    await Deno.writeTextFile(
      join(registry, "@duckdb/node-bindings-linux-x64-musl/registry.json"),
      "{}",
    );
    assert.deepStrictEqual(await muslBuilds(cache), [
      join(registry, "@duckdb/node-bindings-linux-x64-musl/1.5.5"),
      join(registry, "@duckdb/node-bindings-linux-x64-musl/1.5.6"),
      join(registry, "lz4-musl/0.1.0"),
    ]);
    assert.deepStrictEqual(await muslBuilds(join(cache, "missing")), []);
  } finally {
    await Deno.remove(cache, { recursive: true });
  }
});

Deno.test({
  name: LINUX_X64
    ? "deno task compile puts DuckDB's addon with libduckdb.so in cr8tor-publish, without PGlite or musl builds (stand-in runtime)"
    : "deno task compile embeds DuckDB's addon in cr8tor-publish (ignored: the check knows x86_64 Linux only)",
  ignore: !LINUX_X64,
  fn: async () => {
    const out = await Deno.makeTempDir({ prefix: "cr8tor-compile-" });
    try {
      const { code, output } = await compile(
        "publish",
        out,
        HAS_DENORT ? DENORT! : Deno.execPath(),
      );
      assert.equal(code, 0, output);
      const listing = output.slice(output.indexOf("Embedded Files"));
      const binding = /node-bindings-linux-x64\/\* \(([\d.]+)MB/.exec(listing);
      assert.ok(binding, `DuckDB's linux-x64 binding is not embedded:\n${listing}`);
      const bindingsDir = join(
        await npmCacheDir(),
        "registry.npmjs.org/@duckdb/node-bindings-linux-x64",
      );
      const [version] = [...Deno.readDirSync(bindingsDir)].filter((e) => e.isDirectory);
      const library = await Deno.stat(join(bindingsDir, version!.name, "libduckdb.so"));
      assert.ok(
        Number(binding[1]) * 1024 ** 2 >= library.size,
        `the embedded binding (${binding[1]} MB) is smaller than libduckdb.so alone`,
      );
      assert.match(listing, /sha512_worker\.ts/, `the hashing worker is not embedded:\n${listing}`);
      assert.doesNotMatch(listing, /-musl/, "a musl build is embedded");
      assert.doesNotMatch(listing, /pglite/, "PGlite (tools only) is embedded");
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
});

Deno.test({
  name: LINUX_X64
    ? "deno task compile puts /docs' Swagger UI (swagger-ui-dist) in cr8tor-approval and cr8tor-metadata (stand-in runtime)"
    : "deno task compile embeds swagger-ui-dist (ignored: the check knows x86_64 Linux only)",
  ignore: !LINUX_X64,
  fn: async () => {
    const out = await Deno.makeTempDir({ prefix: "cr8tor-compile-" });
    try {
      for (const service of ["approval", "metadata"] as const) {
        const { code, output } = await compile(
          service,
          out,
          HAS_DENORT ? DENORT! : Deno.execPath(),
        );
        assert.equal(code, 0, output);
        const listing = output.slice(output.indexOf("Embedded Files"));
        assert.match(listing, /swagger-ui-dist\/[\d.]+\/\* \(/, `${service}:\n${listing}`);
      }
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
});

/** Reads a process's stdout until a line matches; returns that line. */
async function lineMatching(
  reader: ReadableStreamDefaultReader<string>,
  pattern: RegExp,
  seen: string[],
): Promise<string> {
  let buffered = "";
  while (true) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the binary ended before logging ${pattern}:\n${seen.join("\n")}`);
    buffered += value;
    const lines = buffered.split("\n");
    buffered = lines.pop()!;
    for (const line of lines) {
      seen.push(line);
      if (pattern.test(line)) return line;
    }
  }
}

Deno.test({
  name: HAS_DENORT
    ? "dist/cr8tor-publish built with DENORT_BIN starts, loads DuckDB, answers /health and /ready, stops on SIGTERM"
    : "dist/cr8tor-publish builds and answers /health (ignored: set DENORT_BIN to a denort 2.9.6 binary to run it)",
  ignore: !HAS_DENORT,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "cr8tor-binary-" });
    try {
      const { code, output } = await compile("publish", join(dir, "bin"), DENORT!);
      assert.equal(code, 0, output);
      await Deno.mkdir(join(dir, "secrets"));
      await Deno.writeTextFile(join(dir, "secrets", "publishserviceapikey"), "p".repeat(32));
      for (const area of ["staging", "production"]) {
        await Deno.mkdir(join(dir, "lsc", area), { recursive: true });
      }
      const child = new Deno.Command(join(dir, "bin", "cr8tor-publish"), {
        env: {
          PORT: "0",
          SECRETS_MNT_PATH: join(dir, "secrets"),
          TARGET_STORAGE_ACCOUNT_LSC_SDE_MNT_PATH: join(dir, "lsc"),
          XDG_DATA_HOME: join(dir, "data"),
          NO_COLOR: "1",
        },
        clearEnv: true,
        stdin: "null",
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      const seen: string[] = [];
      try {
        const listening = JSON.parse(await lineMatching(reader, /"event":"listening"/, seen));
        const base = `http://127.0.0.1:${listening.port}`;
        const health = await fetch(`${base}/health`);
        assert.equal(health.status, 200, await health.text());
        const ready = await fetch(`${base}/ready`);
        assert.equal(ready.status, 200, await ready.text());
      } finally {
        child.kill("SIGTERM");
        await lineMatching(reader, /"event":"stopped"/, seen).catch(() => undefined);
        await reader.cancel();
      }
      assert.equal((await child.status).code, 0, seen.join("\n"));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

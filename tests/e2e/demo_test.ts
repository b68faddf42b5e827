/**
 * End to end, the demo: `deno task demo`'s own command runs as a child process with no database server
 * (PGlite is embedded), acts as the CR8TOR CLI through the gateway (packaging as runs, with a progress
 * line per table read from the runs' events, then listing the runs), and must publish a bag that
 * `sha512sum --check` and an independent BagIt check accept. Then `--serve` must come up and stop cleanly.
 * Every run uses free ports and its own temporary run folder.
 */
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bagProblems } from "../support/bagit_check.ts";

const ROOT = new URL("../../", import.meta.url);
const TASKS = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT))).tasks as Record<
  string,
  string
>;
const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** The `deno run` arguments of a task, e.g. `run --allow-... tools/demo.ts`. */
function taskArgs(name: string): string[] {
  const words = TASKS[name]?.split(/\s+/) ?? [];
  assert.equal(words[0], "deno", `task "${name}" must start with "deno"`);
  return words.slice(1);
}

/** Only what a child needs to find Deno's cache: no PG* variables, no keys from the parent. */
function childEnv(): Record<string, string> {
  const env: Record<string, string> = { NO_COLOR: "1" };
  for (const name of ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME", "TMPDIR"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return env;
}

async function sha512sumCheck(dir: string, manifest: string): Promise<void> {
  const { code, stdout, stderr } = await new Deno.Command("sha512sum", {
    args: ["--check", manifest],
    cwd: dir,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(code, 0, `sha512sum --check ${manifest}: ${decode(stdout)}${decode(stderr)}`);
}

const EXPECTED_FILES = {
  csv: [
    "data/outputs/clinical/admissions.csv",
    "data/outputs/clinical/lab_results.csv",
    "data/outputs/clinical/patient_summary.csv",
    "data/outputs/clinical/patients.csv",
    "data/outputs/reference/lab_tests.csv",
    "data/outputs/reference/wards.csv",
  ],
  duckdb: ["data/outputs/database.duckdb"],
};

/** The tables of both datasets, as the progress lines name them. */
const EXPECTED_TABLES = [
  "clinical.admissions",
  "clinical.lab_results",
  "clinical.patient_summary",
  "clinical.patients",
  "reference.lab_tests",
  "reference.wards",
];

/**
 * The demo and the services it starts print no warnings of their dependencies: no Node.js deprecation
 * (`punycode`, which the Databricks driver's node-fetch 2 would load, see
 * `adapters/databricks/databricks_driver.ts`), and not oidc-provider's "Unsupported runtime" (the demo
 * identity provider holds it back).
 */
function assertNoStartupNoise(stderr: string): void {
  assert.doesNotMatch(stderr, /DeprecationWarning|punycode|Unsupported runtime/, stderr);
}

for (const format of ["csv", "duckdb"] as const) {
  Deno.test({
    name: `demo: --format ${format} publishes a bag that verifies, with no database server`,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      const work = await mkdtemp(join(tmpdir(), "cr8tor-demo-"));
      try {
        const run = join(work, "run");
        const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
          args: [...taskArgs("demo"), "--format", format, "--dir", run],
          cwd: ROOT,
          env: childEnv(),
          clearEnv: true,
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
        }).output();
        const out = decode(stdout);
        assert.equal(code, 0, `exit ${code}\n${out}\n${decode(stderr)}`);
        assertNoStartupNoise(decode(stderr));

        // Each step is reported.
        assert.match(out, /1\. validate .*\n {3}dataset clinical: schema clinical, 4 tables/);
        assert.match(out, /clinical\.patients, 9 columns, key \(patient_id\)/);
        assert.match(out, /clinical\.admissions, 7 columns, key \(patient_id, admission_no\)/);
        assert.match(out, /dataset reference: schema reference, 2 tables/);
        assert.match(out, /2\. package /);

        // A progress line per table while it packages, read from the run's events: each table ends
        // with exactly one "done" line, with its size; the analysed tables carry the source's estimate.
        const done = [...out.matchAll(/^ {5}packaging (\w+\.\w+): (.*), done$/gm)]
          .map(([, table, detail]) => ({ table: table!, detail: detail! }));
        assert.deepEqual(done.map((d) => d.table).sort(), EXPECTED_TABLES, out);
        for (const { table, detail } of done) {
          assert.match(detail, /\d+(\.\d)? (B|KB|MB)$/, `${table}: ${detail}`);
        }
        const patients = done.find((d) => d.table === "clinical.patients")!.detail;
        assert.match(
          patients,
          format === "csv" ? /^~300 rows expected, / : /^300 rows \(~300 expected\), /,
        );
        // The view has no statistics: no estimate.
        assert.doesNotMatch(done.find((d) => d.table === "clinical.patient_summary")!.detail, /~/);
        // Not a terminal: no carriage returns or escape sequences.
        assert.ok(!out.includes("\r") && !out.includes("\x1b"), "a carriage return or escape");

        // The runs API lists the project's three runs, all succeeded.
        assert.match(out, /4\. runs +GET \/runs\?project=DemoProject/);
        const runs = [...out.matchAll(/^ {3}[0-9a-f-]{36} +(package|publish) +(\w+) in /gm)]
          .map(([, action, state]) => `${action} ${state}`);
        assert.deepEqual(runs, ["package succeeded", "package succeeded", "publish succeeded"]);

        // The published files, each with a SHA-512 and a size.
        const published = [...out.matchAll(/^ +([0-9a-f]{128}) +(\d+) +(data\/outputs\/\S+)$/gm)]
          .map(([, hash, bytes, path]) => ({ hash: hash!, bytes: Number(bytes), path: path! }));
        assert.deepEqual(published.map((f) => f.path).sort(), EXPECTED_FILES[format]);
        assert.ok(published.every((f) => f.bytes > 0));

        // The verification command it prints works, on the production folder it names.
        const verify =
          /^ +cd (.+) && sha512sum --check manifest-sha512\.txt && sha512sum --check tagmanifest-sha512\.txt$/m
            .exec(out);
        assert.ok(verify, `no verification command in:\n${out}`);
        const production = verify[1]!;
        assert.ok(production.startsWith(join(run, "storage", "lsc", "production", "DemoProject")));
        await sha512sumCheck(production, "manifest-sha512.txt");
        await sha512sumCheck(production, "tagmanifest-sha512.txt");
        assert.deepEqual(await bagProblems(production), []);

        // The printed checksums are the manifest's.
        const manifest = await readFile(join(production, "manifest-sha512.txt"), "utf8");
        for (const f of published) assert.ok(manifest.includes(`${f.hash}  ${f.path}\n`), f.path);

        // Keys and passwords stay in their files.
        const secrets = join(run, "secrets");
        for (const name of await readdir(secrets)) {
          if (name === "demosourceuser") continue;
          const value = (await readFile(join(secrets, name), "utf8")).trim();
          assert.ok(!out.includes(value), `${name} was printed`);
        }
        // The run store is in the run folder.
        assert.ok((await Deno.stat(join(run, "state", "runs.sqlite"))).isFile);
        // The services' logs went to the run folder, not into the summary.
        assert.doesNotMatch(out, /"level":/);
        assert.match(await readFile(join(run, "services.log"), "utf8"), /"event":"published"/);
      } finally {
        await rm(work, { recursive: true, force: true });
      }
    },
  });
}

Deno.test({
  name: "demo: --serve starts the stack, answers through the gateway, and stops on SIGTERM",
  ignore: Deno.build.os === "windows",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const work = await mkdtemp(join(tmpdir(), "cr8tor-serve-"));
    const child = new Deno.Command(Deno.execPath(), {
      args: [...taskArgs("start"), "--ports", "auto", "--dir", join(work, "run")],
      cwd: ROOT,
      env: childEnv(),
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stderr = new Response(child.stderr).text();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let out = "";
    try {
      while (!out.includes("Ctrl-C stops everything.")) {
        const { done, value } = await reader.read();
        if (done) assert.fail(`--serve ended early:\n${out}\n${await stderr}`);
        out += value;
      }
      assert.match(out, /-H 'prefer: respond-async'/);
      assert.match(out, /\/runs\?project=DemoProject&limit=5/);
      const gateway = /approval \(gateway\) +(http:\/\/\S+)/.exec(out)?.[1];
      const keyFile = /gateway key +(\S+)/.exec(out)?.[1];
      const curlBody = /-d '(\{.*\})'$/m.exec(out)?.[1];
      assert.ok(gateway && keyFile && curlBody, out);
      const key = (await readFile(keyFile, "utf8")).trim();
      assert.ok(!out.includes(key), "the gateway key was printed");

      const res = await fetch(`${gateway}/project/validate`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-api-key": key },
        body: curlBody,
      });
      const json = await res.json();
      assert.equal(res.status, 200, JSON.stringify(json));
      assert.equal(json.payload.schema_name, "clinical");
      assert.deepEqual(
        json.payload.tables.map((t: { name: string }) => t.name),
        ["admissions", "lab_results", "patient_summary", "patients"],
      );

      // The dashboard, with the DEMO identity provider on loopback and its people.
      const dashboard = /^ {2}(http:\/\/127\.0\.0\.1:\d+\/ui\/)$/m.exec(out)?.[1];
      assert.ok(dashboard, out);
      assert.match(
        out,
        /DEMO identity provider http:\/\/127\.0\.0\.1:\d+ \(loopback only; password "demo"/,
      );
      for (const login of ["igor", "dana", "olive", "oscar", "rita", "otto"]) {
        assert.match(out, new RegExp(`^ {4}${login} `, "m"));
      }
      const signIn = await fetch(dashboard);
      assert.equal(signIn.status, 401);
      assert.match(await signIn.text(), /Sign in with your organisation/);
      const login = await fetch(`${dashboard}login`, { redirect: "manual" });
      await login.body?.cancel();
      assert.equal(login.status, 302);
      assert.match(
        login.headers.get("location") ?? "",
        /^http:\/\/127\.0\.0\.1:\d+\/auth\?.*code_challenge_method=S256/,
      );

      child.kill("SIGTERM");
      const { code } = await child.status;
      assert.equal(code, 0, await stderr);
      assertNoStartupNoise(await stderr);
    } finally {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already ended.
      }
      await reader.cancel().catch(() => {});
      await child.status;
      await rm(work, { recursive: true, force: true });
    }
  },
});

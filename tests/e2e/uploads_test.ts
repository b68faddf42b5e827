/**
 * End to end, uploads (`docs/uploads.md`): `deno task start` (real services, the DEMO identity
 * provider) as a child process; a researcher uploads a CSV over tus through the gateway's dashboard,
 * marks it ready, the approvers pass both gates, the researcher stages and publishes it, and
 * `deno task verify-release` (its own command, as a child process) accepts the published bag with the
 * gateway's release keys.
 */
import assert from "node:assert/strict";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DashboardClient } from "../support/dashboard_sign_in.ts";

const ROOT = new URL("../../", import.meta.url);
const TASKS = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT))).tasks as Record<
  string,
  string
>;

/** The `deno run` arguments of a task. */
function taskArgs(name: string): string[] {
  const words = TASKS[name]?.split(/\s+/) ?? [];
  assert.equal(words[0], "deno", `task "${name}" must start with "deno"`);
  return words.slice(1);
}

/** Only what a child needs to find Deno's cache. */
function childEnv(): Record<string, string> {
  const env: Record<string, string> = { NO_COLOR: "1" };
  for (const name of ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME", "TMPDIR"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return env;
}

/** A dashboard client over real HTTP (redirects not followed, as a browser's page code sees them). */
function overHttp(baseUrl: string): DashboardClient {
  return new DashboardClient({
    request: (input, init) => fetch(input, { ...init, redirect: "manual" }),
  }, baseUrl);
}

const CSV = new TextEncoder().encode("id,site,visits\n1,north,3\n2,south,5\n3,east,0\n");

Deno.test({
  name: "uploads: a CSV uploaded, approved through both gates, published and verified",
  ignore: Deno.build.os === "windows",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const work = await mkdtemp(join(tmpdir(), "cr8tor-uploads-"));
    const run = join(work, "run");
    const child = new Deno.Command(Deno.execPath(), {
      args: [...taskArgs("start"), "--ports", "auto", "--dir", run],
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
      const dashboard = /^ {2}(http:\/\/127\.0\.0\.1:\d+)\/ui\/$/m.exec(out)?.[1];
      assert.ok(dashboard, out);
      // Keep reading the child's output so that it never blocks on a full pipe.
      (async () => {
        while (!(await reader.read()).done) { /* drain */ }
      })().catch(() => {});

      const rita = overHttp(dashboard);
      const csrf = DashboardClient.csrfOf(await (await rita.signIn("rita")).text());
      const created = await rita.post("/ui/uploads", {
        csrf,
        project_name: "UploadedSurvey",
        destination: "LSC",
      });
      assert.equal(created.status, 303, await created.text());
      const page = new URL(created.headers.get("location") ?? "", dashboard).pathname;
      const source = page.split("/").at(-1) ?? "";
      const tus = (
        method: string,
        path: string,
        headers: Record<string, string>,
        body?: BodyInit,
      ) =>
        rita.request(path, {
          method,
          headers: {
            "tus-resumable": "1.0.0",
            "x-csrf-token": csrf,
            origin: dashboard,
            ...headers,
          },
          ...(body === undefined ? {} : { body }),
        });
      const upload = await tus("POST", "/ui/uploads/tus", {
        "upload-length": String(CSV.length),
        "upload-metadata": `filename ${btoa("visits.csv")},source ${btoa(source)}`,
      });
      assert.equal(upload.status, 201, await upload.text());
      const location = new URL(upload.headers.get("location") ?? "", dashboard).pathname;
      // Two chunks, the second after asking the server where to resume.
      const patch = (offset: number, bytes: Uint8Array) =>
        tus("PATCH", location, {
          "content-type": "application/offset+octet-stream",
          "upload-offset": String(offset),
        }, bytes as BodyInit);
      assert.equal((await patch(0, CSV.subarray(0, 20))).status, 204);
      const offset = Number((await tus("HEAD", location, {})).headers.get("upload-offset"));
      assert.equal(offset, 20);
      assert.equal((await patch(offset, CSV.subarray(offset))).status, 204);
      const checked = await (await rita.request(page)).text();
      assert.match(checked, /data-rows[^>]*>3</);
      assert.equal((await rita.post(`${page}/ready`, { csrf })).status, 303);
      const releaseId = /\/ui\/releases\/([0-9a-f-]{36})/.exec(
        await (await rita.request(page)).text(),
      )
        ?.[1];
      assert.ok(releaseId, "marking ready made a release");

      const approve = async (login: string, action: string) => {
        const person = overHttp(dashboard);
        const token = DashboardClient.csrfOf(await (await person.signIn(login)).text());
        const decided = await person.post(`/ui/releases/${releaseId}/decisions`, {
          csrf: token,
          action,
          decision: "approve",
        });
        assert.equal(decided.status, 303, await decided.text());
      };
      await approve("igor", "sign_off|INFORMATION_GOVERNANCE");
      await approve("dana", "sign_off|DATA_ENGINEER");
      const staged = await rita.post(`${page}/stage`, { csrf });
      assert.equal(staged.status, 303, await staged.text());
      await approve("olive", "disclosure|OUTPUT_CHECKER");
      await approve("oscar", "disclosure|OUTPUT_CHECKER");
      const published = await rita.post(`${page}/publish`, { csrf });
      assert.equal(published.status, 303, await published.text());

      const project = join(run, "storage", "lsc", "production", "UploadedSurvey");
      const [startTime] = await readdir(project);
      assert.ok(startTime);
      const bag = join(project, startTime);
      assert.deepEqual(
        await Deno.readFile(join(bag, "data", "outputs", "uploads", "visits.csv")),
        CSV,
      );
      const verify = await new Deno.Command(Deno.execPath(), {
        args: [
          ...taskArgs("verify-release"),
          bag,
          "--keys",
          `${dashboard}/.well-known/release-keys`,
        ],
        cwd: ROOT,
        env: childEnv(),
        clearEnv: true,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const said = new TextDecoder().decode(verify.stdout) +
        new TextDecoder().decode(verify.stderr);
      assert.equal(verify.code, 0, said);
      assert.match(said, /Release verified: all \d+ checks hold\./);
    } finally {
      child.kill("SIGTERM");
      await child.status;
      await stderr.catch(() => "");
      await rm(work, { recursive: true, force: true });
    }
  },
});

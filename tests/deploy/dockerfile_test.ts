/**
 * The Dockerfile and .dockerignore, read as text: no Docker engine builds them in the tests (docs/deploy.md
 * says what that leaves unverified). What they must say comes from the code and the project's files: the
 * Deno version of .ci/run, the start tasks' permissions, each service's port, the module graph.
 *
 * @module
 */
import assert from "node:assert/strict";
import { runtimeFlagsOf } from "../../tools/compile.ts";
import {
  buildFacts,
  cleanupSeconds,
  readRepoFile,
  readsVariable,
  repoPath,
  type Service,
  SERVICES,
} from "./_deploy.ts";

interface Instruction {
  readonly keyword: string;
  readonly args: string;
}

interface Stage {
  readonly name: string;
  readonly from: string;
  readonly instructions: Instruction[];
}

/** The Dockerfile's ARGs before the first FROM, and its stages. */
function parseDockerfile(text: string): { args: Record<string, string>; stages: Stage[] } {
  const lines = text.replace(/\\\n/g, " ").split("\n").map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
  const args: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const line of lines) {
    const [keyword, ...rest] = line.split(/\s+/);
    const instruction = { keyword: keyword!.toUpperCase(), args: rest.join(" ") };
    if (instruction.keyword === "FROM") {
      const match = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(instruction.args);
      assert.ok(match, `cannot read FROM ${instruction.args}`);
      stages.push({ from: match[1]!, name: match[2] ?? "", instructions: [] });
    } else if (stages.length === 0 && instruction.keyword === "ARG") {
      const [name, value] = instruction.args.split("=");
      args[name!] = value ?? "";
    } else stages.at(-1)?.instructions.push(instruction);
  }
  return { args, stages };
}

const dockerfile = parseDockerfile(await readRepoFile("Dockerfile"));
const tasks = JSON.parse(await readRepoFile("deno.json")).tasks as Record<string, string>;

/** A stage and the stages it is built on, base first. */
function chain(name: string): Stage[] {
  const stage = dockerfile.stages.find((s) => s.name === name);
  assert.ok(stage, `the Dockerfile has no stage ${name}`);
  const parent = dockerfile.stages.find((s) => s.name === stage.from);
  return parent === undefined ? [stage] : [...chain(parent.name), stage];
}

/** The instructions of a stage with those it inherits, in order. */
function instructionsOf(name: string, keyword: string): string[] {
  return chain(name).flatMap((s) => s.instructions).filter((i) => i.keyword === keyword)
    .map((i) => i.args);
}

/** The environment a stage's ENV instructions set (`ENV A=1 B=2`). */
function envOf(name: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const args of instructionsOf(name, "ENV")) {
    for (const [, key, value] of args.matchAll(/(\w+)=(\S+)/g)) env[key!] = value!;
  }
  return env;
}

Deno.test("Dockerfile: based on the official Debian image of the Deno version .ci/run installs", async () => {
  const version = /^DENO_VERSION=(\S+)$/m.exec(await readRepoFile(".ci/run"))?.[1];
  assert.ok(version, "cannot find DENO_VERSION in .ci/run");
  assert.equal(dockerfile.args.DENO_IMAGE, `denoland/deno:debian-${version}`);
  assert.equal(dockerfile.stages[0]!.from, "${DENO_IMAGE}");
  for (const service of SERVICES) assert.equal(chain(service)[0]!.from, "${DENO_IMAGE}", service);
});

Deno.test("Dockerfile: each service target runs its main.ts with its start task's permissions, cached, as a non-root user", () => {
  for (const service of SERVICES) {
    const cmd = instructionsOf(service, "CMD").at(-1);
    assert.ok(cmd, `${service}: no CMD`);
    assert.deepStrictEqual(JSON.parse(cmd), [
      "run",
      "--cached-only",
      "--frozen",
      ...runtimeFlagsOf(tasks, service),
      `apps/${service}/main.ts`,
    ]);
    const user = instructionsOf(service, "USER").at(-1);
    assert.ok(
      user !== undefined && !["root", "0", "0:0"].includes(user),
      `${service} runs as root`,
    );
    assert.deepStrictEqual(instructionsOf(service, "STOPSIGNAL"), ["SIGTERM"]);
    assert.equal(
      instructionsOf(service, "VOLUME").length,
      0,
      `${service}: VOLUME makes stray volumes`,
    );
  }
});

Deno.test("Dockerfile: ports, health check and environment agree with the code", async () => {
  for (const service of SERVICES) {
    const env = envOf(service);
    const facts = await buildFacts(service, env);
    const port = Number(env.PORT);
    assert.equal(
      port,
      (await buildFacts(service)).port,
      `${service}: PORT is not the default port`,
    );
    assert.equal(facts.port, port);
    assert.deepStrictEqual(instructionsOf(service, "EXPOSE"), [String(port)], service);
    const health = instructionsOf(service, "HEALTHCHECK").at(-1) ?? "";
    assert.match(health, /CMD \["deno", "eval"/, `${service}: health check is not a deno eval`);
    assert.ok(health.includes("/health"), `${service}: health check does not GET /health`);
    assert.ok(health.includes(`?? '${port}'`), `${service}: health check's default port`);
    for (const name of Object.keys(env)) {
      const deno = name.startsWith("DENO_") || name === "NO_COLOR";
      assert.ok(deno || readsVariable(service, name, facts), `${service}: sets ${name}, unread`);
    }
    assert.equal(env.SECRETS_MNT_PATH, "/run/secrets");
  }
});

/** `.dockerignore` as a function: whether a repository path is sent to the build. */
async function dockerContext(): Promise<(path: string) => boolean> {
  const rules = (await readRepoFile(".dockerignore")).split("\n").map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
  const escape = (text: string) => text.replace(/[.+?^${}()|[\]\\]/g, "\\$&");
  const token = (part: string) =>
    part === "**/" ? "(?:.*/)?" : part === "**" ? ".*" : part === "*" ? "[^/]*" : escape(part);
  const toRegExp = (glob: string) =>
    new RegExp(
      `^${
        (glob.replace(/\/$/, "").match(/\*\*\/|\*\*|\*|[^*]+/g) ?? []).map(token).join("")
      }(?:/.*)?$`,
    );
  const compiled = rules.map((r) => ({
    include: r.startsWith("!"),
    re: toRegExp(r.replace(/^!/, "")),
  }));
  return (path) => {
    let included = true;
    for (const rule of compiled) if (rule.re.test(path)) included = rule.include;
    return included;
  };
}

Deno.test(".dockerignore: sends every module the services import, and no test, tool or secret", async () => {
  const sent = await dockerContext();
  const copied = instructionsOf("publish", "COPY").map((args) => args.split(/\s+/)[0]!);
  const root = new URL("../../", import.meta.url).href;
  for (const service of SERVICES) {
    const { stdout, code } = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", `apps/${service}/main.ts`],
      cwd: repoPath("."),
      stdout: "piped",
      stderr: "null",
    }).output();
    assert.equal(code, 0, `deno info apps/${service}/main.ts failed`);
    const info = JSON.parse(new TextDecoder().decode(stdout)) as {
      modules: { specifier: string }[];
    };
    for (const { specifier } of info.modules.filter((m) => m.specifier.startsWith(root))) {
      const path = specifier.slice(root.length);
      assert.ok(sent(path), `${service} imports ${path}, which .dockerignore leaves out`);
      assert.ok(copied.some((dir) => path.startsWith(dir)), `${service}: ${path} is not copied`);
    }
  }
  for (
    const path of [
      "deploy/compose/secrets/approvalserviceapikey",
      "tests/deploy/_deploy.ts",
      "tools/compile.ts",
      "apps/publish/app_test.ts",
      ".git/config",
      "dist/cr8tor-publish",
      "docs/deploy.md",
    ]
  ) {
    assert.ok(!sent(path), `${path} would be sent to the build`);
  }
  for (const path of ["deno.json", "deno.lock", "apps/publish/main.ts", "domain/names.ts"]) {
    assert.ok(sent(path), `${path} would not be sent to the build`);
  }
});

Deno.test("Dockerfile: the stop timeout the images document covers the grace period and cleanup", async () => {
  const text = await readRepoFile("Dockerfile");
  const cleanup = cleanupSeconds();
  for (const service of SERVICES as readonly Service[]) {
    const grace = Number(envOf(service).SHUTDOWN_GRACE_SECONDS);
    assert.ok(grace > 0, service);
    assert.ok(
      text.includes(`allow ${grace} + ${cleanup} s`),
      "the Dockerfile's stop-timeout note is stale",
    );
  }
});

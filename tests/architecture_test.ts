/**
 * The layer allow-list (style guide §2.1-2.2), checked on what Deno actually resolves. `tools/layers_lint.ts`
 * gives the same feedback in the editor; this test also catches what a `// deno-lint-ignore` hides.
 *
 * - `deno info --json` runs once per non-test file in `domain/`, `ports/` and `application/`, and every
 *   `modules[].specifier` it reports must be allowed. (`npmPackages` is not used: it lists every package in
 *   the lockfile.)
 * - Every file in `domain/`, `ports/`, `application/` and `adapters/`, tests included, is scanned for
 *   imports of `apps/`; every file in `domain/`, `ports/` and `adapters/` for imports of `application/`.
 * - No file in those folders may silence the layers rule.
 *
 * @module
 */
import assert from "node:assert/strict";
import layersPlugin from "../tools/layers_lint.ts";

const ROOT = new URL("../", import.meta.url);
const ROOT_PATH = decodeURIComponent(ROOT.pathname);
const SOURCE_FILE = /\.[cm]?[jt]sx?$/;
const TEST_FILE = /(?:_test|\.test)\.[cm]?[jt]sx?$/;

/** npm zod as `deno info` reports it (`npm:/zod@4.6.7`), or as written (`npm:zod@4.6.7`). */
const ZOD = /^npm:\/?zod@[^/]+$/;
/** Built-ins `domain/` may use (keep in step with `DOMAIN_PACKAGES` in `tools/layers_lint.ts`). */
const DOMAIN_BUILTINS: ReadonlySet<string> = new Set(["node:path/posix", "node:crypto"]);

interface InfoModule {
  readonly specifier: string;
  readonly kind?: string;
  readonly error?: string;
}

interface Info {
  readonly roots: readonly string[];
  readonly modules: readonly InfoModule[];
}

/** Lists the files under `folder` (relative to the repository root), recursively, sorted. */
async function listFiles(folder: string): Promise<string[]> {
  const found: string[] = [];
  async function walk(relative: string): Promise<void> {
    for await (const entry of Deno.readDir(new URL(relative, ROOT))) {
      const path = `${relative}/${entry.name}`;
      if (entry.isDirectory) await walk(path);
      else if (entry.isFile) found.push(path);
    }
  }
  try {
    await walk(folder);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return found.sort();
}

async function layerFiles(folder: string): Promise<string[]> {
  return (await listFiles(folder)).filter((f) => SOURCE_FILE.test(f) && !TEST_FILE.test(f));
}

const infoCache = new Map<string, Promise<Info>>();

/** Runs `deno info --json` for one file (once per file per test run). */
function denoInfo(file: string): Promise<Info> {
  let cached = infoCache.get(file);
  if (cached === undefined) {
    cached = runDenoInfo(file);
    infoCache.set(file, cached);
  }
  return cached;
}

async function runDenoInfo(file: string): Promise<Info> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", file],
    cwd: ROOT_PATH,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const decoder = new TextDecoder();
  if (!output.success) {
    throw new Error(`Cannot run deno info on ${file}: ${decoder.decode(output.stderr)}`);
  }
  return JSON.parse(decoder.decode(output.stdout)) as Info;
}

function fileUrl(relative: string): string {
  return new URL(relative, ROOT).href;
}

function isUnder(specifier: string, folder: string): boolean {
  return specifier.startsWith(fileUrl(`${folder}/`));
}

/** Returns the modules reachable from `file` that `allowed` rejects, plus any that failed to resolve. */
async function forbiddenModules(
  file: string,
  allowed: (specifier: string) => boolean,
): Promise<string[]> {
  const info = await denoInfo(file);
  assert.deepEqual(
    info.roots,
    [fileUrl(file)],
    `deno info resolved an unexpected root for ${file}`,
  );
  assert.ok(info.modules.length > 0, `deno info listed no modules for ${file}`);
  return info.modules.flatMap((m) => {
    if (m.error !== undefined) return [`${m.specifier} (${m.error})`];
    return allowed(m.specifier) ? [] : [m.specifier];
  });
}

function domainAllows(specifier: string): boolean {
  return isUnder(specifier, "domain") || ZOD.test(specifier) || DOMAIN_BUILTINS.has(specifier);
}

Deno.test("architecture: domain/ imports only domain/ and zod", async (t) => {
  const files = await layerFiles("domain");
  assert.ok(files.length > 0, "expected source files in domain/");
  await Promise.all(files.map(denoInfo)); // warm the cache in parallel
  for (const file of files) {
    await t.step(file, async () => {
      assert.deepEqual(await forbiddenModules(file, domainAllows), []);
    });
  }
});

Deno.test("architecture: ports/ imports only domain/ (and what domain/ allows)", async (t) => {
  const files = await layerFiles("ports");
  assert.ok(files.length > 0, "expected source files in ports/");
  await Promise.all(files.map(denoInfo));
  for (const file of files) {
    await t.step(file, async () => {
      const self = fileUrl(file);
      assert.deepEqual(
        await forbiddenModules(file, (s) => s === self || domainAllows(s)),
        [],
      );
    });
  }
});

Deno.test(
  "architecture: application/ imports only domain/, ports/ and application/ (and what domain/ allows)",
  async (t) => {
    const files = await layerFiles("application");
    assert.ok(files.length > 0, "expected source files in application/");
    await Promise.all(files.map(denoInfo));
    for (const file of files) {
      await t.step(file, async () => {
        assert.deepEqual(
          await forbiddenModules(
            file,
            (s) => isUnder(s, "application") || isUnder(s, "ports") || domainAllows(s),
          ),
          [],
        );
      });
    }
  },
);

/** `from "x"`, `import "x"`, `import("x")`, `export * from "x"`, `typeof import("x")`. */
const IMPORT_SPECIFIER = /\b(?:from|import)\s*\(?\s*(["'`])([^"'`\n]+)\1/g;

/** Returns the specifiers in `text` that reach `folder/` (`apps` unless given) from the file at `relative`. */
function appsImports(relative: string, text: string, folder = "apps"): string[] {
  const base = new URL(relative, ROOT);
  const folderRoot = fileUrl(`${folder}/`);
  return [...text.matchAll(IMPORT_SPECIFIER)]
    .map((match) => match[2] ?? "")
    .filter((specifier) => {
      if (/^(?:\.{1,2}\/|\/|file:)/.test(specifier)) {
        return new URL(specifier, base).href.startsWith(folderRoot);
      }
      return specifier.startsWith(`${folder}/`);
    });
}

Deno.test("architecture: domain/, ports/, application/ and adapters/ never import apps/", async (t) => {
  await t.step("the scan finds a relative import of apps/", () => {
    assert.deepEqual(
      appsImports("adapters/x/y.ts", 'import { a } from "../../apps/_shared/log.ts";\n'),
      ["../../apps/_shared/log.ts"],
    );
    assert.deepEqual(appsImports("domain/y.ts", 'const m = await import("../apps/a.ts");'), [
      "../apps/a.ts",
    ]);
    assert.deepEqual(appsImports("domain/y.ts", 'import { a } from "./apps/a.ts";'), []);
  });
  for (const folder of ["domain", "ports", "application", "adapters"]) {
    const files = (await listFiles(folder)).filter((f) => SOURCE_FILE.test(f));
    for (const file of files) {
      await t.step(file, async () => {
        const text = await Deno.readTextFile(new URL(file, ROOT));
        assert.deepEqual(appsImports(file, text), []);
      });
    }
  }
});

Deno.test("architecture: domain/, ports/ and adapters/ never import application/", async (t) => {
  await t.step("the scan finds a relative import of application/", () => {
    assert.deepEqual(
      appsImports(
        "adapters/x/y.ts",
        'import { a } from "../../application/package_dataset.ts";\n',
        "application",
      ),
      ["../../application/package_dataset.ts"],
    );
    assert.deepEqual(appsImports("ports/y.ts", 'import "./application/a.ts";', "application"), []);
  });
  for (const folder of ["domain", "ports", "adapters"]) {
    const files = (await listFiles(folder)).filter((f) => SOURCE_FILE.test(f));
    for (const file of files) {
      await t.step(file, async () => {
        const text = await Deno.readTextFile(new URL(file, ROOT));
        assert.deepEqual(appsImports(file, text, "application"), []);
      });
    }
  }
});

Deno.test("architecture: only adapters/duckdb/duckdb.ts imports @duckdb/node-api (it sets DuckDB's allocator first)", async () => {
  const importers: string[] = [];
  for (const folder of ["domain", "ports", "application", "adapters", "apps"]) {
    for (const file of await layerFiles(folder)) {
      const text = await Deno.readTextFile(new URL(file, ROOT));
      if (/from\s+["']@duckdb\/node-api["']|import\(\s*["']@duckdb\/node-api["']/.test(text)) {
        importers.push(file);
      }
    }
  }
  assert.deepEqual(importers, ["adapters/duckdb/duckdb.ts"]);
});

/** Returns the `deno-lint-ignore` directives in `text` that would silence the layers rule. */
function layerIgnores(text: string): string[] {
  const prefix = `${layersPlugin.name}/`;
  return [...text.matchAll(/deno-lint-ignore(-file)?(?=\s|$)([^\n]*)/g)].filter((match) => {
    const rules = (match[2] ?? "").split("--")[0]?.trim().split(/\s+/).filter(Boolean) ?? [];
    // `deno-lint-ignore-file` without rules silences every rule, ours included.
    return rules.length === 0 || rules.some((rule) => rule.startsWith(prefix));
  }).map((match) => match[0].trim());
}

Deno.test("architecture: no file in domain/, ports/, application/ or adapters/ silences the layers rule", async (t) => {
  await t.step("the scan recognises ignores of the layers rule", () => {
    assert.deepEqual(layerIgnores("// deno-lint-ignore layers/imports\nimport x from 'y';"), [
      "deno-lint-ignore layers/imports",
    ]);
    assert.deepEqual(layerIgnores("// deno-lint-ignore-file"), ["deno-lint-ignore-file"]);
    assert.deepEqual(layerIgnores("// deno-lint-ignore no-explicit-any layers/imports"), [
      "deno-lint-ignore no-explicit-any layers/imports",
    ]);
    assert.deepEqual(layerIgnores("// deno-lint-ignore no-explicit-any\nlet a: any;"), []);
  });
  for (const folder of ["domain", "ports", "application", "adapters"]) {
    for (const file of (await listFiles(folder)).filter((f) => SOURCE_FILE.test(f))) {
      await t.step(file, async () => {
        assert.deepEqual(layerIgnores(await Deno.readTextFile(new URL(file, ROOT))), []);
      });
    }
  }
});

Deno.test("architecture: deno.json runs the layers lint plugin", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
  assert.ok(
    config.lint?.plugins?.includes("./tools/layers_lint.ts"),
    "deno.json lint.plugins must list ./tools/layers_lint.ts",
  );
  assert.equal(layersPlugin.name, "layers");
  assert.deepEqual(Object.keys(layersPlugin.rules), ["imports"]);
});

Deno.test("architecture: the layers lint plugin reports forbidden imports", async (t) => {
  const cases: [label: string, file: string, source: string, reported: number][] = [
    ["domain/ importing domain/", "domain/a.ts", 'import { b } from "./b.ts";', 0],
    ["domain/ importing zod", "domain/a.ts", 'import { z } from "zod";', 0],
    [
      "domain/ importing node:path/posix",
      "domain/a.ts",
      'import { posix } from "node:path/posix";',
      0,
    ],
    [
      "domain/ importing node:crypto",
      "domain/a.ts",
      'import { createHash } from "node:crypto";',
      0,
    ],
    ["domain/ importing npm:zod directly", "domain/a.ts", 'import { z } from "npm:zod@4";', 1],
    ["domain/ importing hono", "domain/a.ts", 'import { Hono } from "hono";', 1],
    ["domain/ importing node:fs", "domain/a.ts", 'import { readFile } from "node:fs/promises";', 1],
    [
      "domain/ importing ports/",
      "domain/a.ts",
      'import type { F } from "../ports/filestore.ts";',
      1,
    ],
    ["domain/ importing adapters/", "domain/a.ts", 'export * from "../adapters/memory/x.ts";', 1],
    ["domain/ re-exporting apps/", "domain/a.ts", 'export { a } from "../apps/_shared/log.ts";', 1],
    ["domain/ dynamic import of apps/", "domain/a.ts", 'await import("../apps/x.ts");', 1],
    ["domain/ dynamic import, template", "domain/a.ts", "await import(`../ports/x.ts`);", 1],
    ["domain/ dynamic import, not a literal", "domain/a.ts", "const p = 'x'; await import(p);", 1],
    ["domain/ type import of ports/", "domain/a.ts", 'type F = typeof import("../ports/x.ts");', 1],
    ["domain/ escaping through ..", "domain/sub/a.ts", 'import "../../ports/x.ts";', 1],
    ["domain/ into domain/ via ..", "domain/sub/a.ts", 'import "../b.ts";', 0],
    ["domain/ absolute path to ports/", "domain/a.ts", `import "${ROOT_PATH}ports/x.ts";`, 1],
    [
      "domain/ test using node:assert",
      "domain/a_test.ts",
      'import assert from "node:assert/strict";',
      0,
    ],
    ["domain/ test importing apps/", "domain/a_test.ts", 'import { a } from "../apps/a.ts";', 1],
    ["ports/ importing domain/", "ports/a.ts", 'import { E } from "../domain/errors.ts";', 0],
    ["ports/ importing ports/", "ports/a.ts", 'import type { F } from "./filestore.ts";', 1],
    ["ports/ importing zod", "ports/a.ts", 'import { z } from "zod";', 1],
    ["ports/ importing apps/", "ports/a.ts", 'import { a } from "../apps/a.ts";', 1],
    [
      "adapters/ importing ports/ and npm",
      "adapters/pg/a.ts",
      'import "../../ports/a.ts";\nimport "postgres";',
      0,
    ],
    [
      "adapters/ importing apps/",
      "adapters/pg/a.ts",
      'import { l } from "../../apps/_shared/log.ts";',
      1,
    ],
    [
      "application/ importing domain/, ports/ and application/",
      "application/a.ts",
      'import "../domain/catalog.ts";\nimport "../ports/destination.ts";\nimport "./source.ts";',
      0,
    ],
    ["application/ importing zod", "application/a.ts", 'import { z } from "zod";', 0],
    [
      "application/ importing adapters/",
      "application/a.ts",
      'import { P } from "../adapters/postgres/x.ts";',
      1,
    ],
    ["application/ importing apps/", "application/a.ts", 'import { a } from "../apps/a.ts";', 1],
    ["application/ importing hono", "application/a.ts", 'import { Hono } from "hono";', 1],
    ["application/ importing node:fs", "application/a.ts", 'import "node:fs/promises";', 1],
    [
      "application/ dynamic import, not a literal",
      "application/a.ts",
      "const p = 'x'; await import(p);",
      1,
    ],
    [
      "application/ test using adapters/ and test support",
      "application/a_test.ts",
      'import "../adapters/memory/x.ts";\nimport "../tests/support/apps.ts";',
      0,
    ],
    [
      "application/ test importing apps/",
      "application/a_test.ts",
      'import { a } from "../apps/a.ts";',
      1,
    ],
    [
      "domain/ importing application/",
      "domain/a.ts",
      'import "../application/x.ts";',
      1,
    ],
    [
      "ports/ importing application/",
      "ports/a.ts",
      'import type { X } from "../application/x.ts";',
      1,
    ],
    [
      "adapters/ importing application/",
      "adapters/pg/a.ts",
      'import { p } from "../../application/package_dataset.ts";',
      1,
    ],
    [
      "adapters/ test importing application/",
      "adapters/pg/a_test.ts",
      'import { p } from "../../application/package_dataset.ts";',
      1,
    ],
    ["apps/ importing application/", "apps/x/a.ts", 'import "../../application/a.ts";', 0],
    ["apps/ importing anything", "apps/x/a.ts", 'import "../../adapters/a.ts";\nimport "hono";', 0],
    ["tests/ importing anything", "tests/a.ts", 'import "../apps/a.ts";', 0],
  ];
  for (const [label, file, source, reported] of cases) {
    await t.step(label, () => {
      const diagnostics = Deno.lint.runPlugin(layersPlugin, `${ROOT_PATH}${file}`, source);
      assert.equal(diagnostics.length, reported, JSON.stringify(diagnostics));
      for (const d of diagnostics) assert.equal(d.id, "layers/imports");
    });
  }
});

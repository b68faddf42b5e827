/**
 * The publish service loads at start only what every deployment needs: the Kubernetes client, the
 * MySQL/MariaDB and SQL Server drivers and DuckDB are imported on first use. Together they were about
 * 45 MB of its 60 MB of V8 heap at start, and 100 MB of its resident memory, which every package then
 * paid for (docs/benchmarks.md, issue 20).
 *
 * @module
 */
import assert from "node:assert/strict";

/** npm packages the service must not import statically. */
const LOADED_ON_FIRST_USE = ["@kubernetes/client-node", "tedious", "mysql2", "@duckdb/node-api"];

interface Dependency {
  readonly code?: { readonly specifier: string };
  readonly isDynamic?: boolean;
}

interface InfoModule {
  readonly specifier: string;
  readonly dependencies?: readonly Dependency[];
}

/** Every module `root` imports statically, directly or not (`import()` and `import type` left out). */
async function staticImports(root: string): Promise<Set<string>> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", root],
    cwd: new URL("../../", import.meta.url),
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  const info = JSON.parse(new TextDecoder().decode(output.stdout)) as {
    readonly roots: readonly string[];
    readonly modules: readonly InfoModule[];
  };
  const bySpecifier = new Map(info.modules.map((m) => [m.specifier, m]));
  const seen = new Set<string>();
  const pending = [...info.roots];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    if (seen.has(next)) continue;
    seen.add(next);
    for (const dependency of bySpecifier.get(next)?.dependencies ?? []) {
      if (dependency.code !== undefined && dependency.isDynamic !== true) {
        pending.push(dependency.code.specifier);
      }
    }
  }
  return seen;
}

Deno.test("publish service: the Kubernetes client, the MySQL and SQL Server drivers and DuckDB load on first use", async () => {
  const imported = [...await staticImports("apps/publish/main.ts")];
  assert.ok(
    imported.some((s) => s.startsWith("npm:postgres@")),
    "the walk reaches npm packages (postgres.js is imported statically)",
  );
  const early = LOADED_ON_FIRST_USE.filter((name) =>
    imported.some((s) => s.startsWith(`npm:${name}@`) || s.startsWith(`npm:/${name}@`))
  );
  assert.deepEqual(early, []);
});

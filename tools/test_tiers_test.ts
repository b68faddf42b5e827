import assert from "node:assert/strict";
import { TEST_TIERS } from "./test_tiers.ts";

const root = new URL("../", import.meta.url);

/** Every `*_test.ts` under the repository, as a path relative to it. */
async function testFiles(dir = ""): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(new URL(dir || ".", root))) {
    const path = dir + entry.name;
    if (entry.isDirectory && !entry.name.startsWith(".") && entry.name !== "node_modules") {
      found.push(...await testFiles(path + "/"));
    } else if (entry.isFile && entry.name.endsWith("_test.ts")) {
      found.push(path);
    }
  }
  return found;
}

Deno.test("deno task test: every test file belongs to exactly one tier", async () => {
  const { tasks } = JSON.parse(await Deno.readTextFile(new URL("deno.json", root))) as {
    tasks: Record<string, string>;
  };
  const roots = new Map(TEST_TIERS.map((tier) => {
    const command = tasks[tier];
    assert.ok(command !== undefined, `deno.json has no task "${tier}"`);
    return [tier, command.split(/\s+/).filter((word) => /^[a-z_]+\/|_test\.ts$/.test(word))];
  }));
  for (const file of await testFiles()) {
    const tiers = [...roots].filter(([, paths]) =>
      paths.some((p) => file === p || file.startsWith(p))
    )
      .map(([tier]) => tier);
    assert.equal(tiers.length, 1, `${file} is run by ${tiers.length} tiers (${tiers.join(", ")})`);
  }
});

Deno.test("deno task test: runs the tier runner, and the unit tier needs no permission", async () => {
  const { tasks } = JSON.parse(await Deno.readTextFile(new URL("deno.json", root))) as {
    tasks: Record<string, string>;
  };
  assert.match(tasks["test"] ?? "", /tools\/test_tiers\.ts$/);
  assert.doesNotMatch(tasks["test:unit"] ?? "", /--allow/);
});

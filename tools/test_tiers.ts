/**
 * `deno task test`: runs every test tier's own task (`test:unit`, `test:integration`, `test:e2e`,
 * `test:browser`) one after the other, each with its own permissions, and goes on after a failing tier so
 * that one run reports every failure. Extra arguments (e.g. `--reporter=dot`) are passed to each tier.
 * Exits 1 when any tier failed.
 *
 * @module
 */

/** The tiers, in the order they run: the fast ones first. */
export const TEST_TIERS = ["test:unit", "test:integration", "test:e2e", "test:browser"] as const;

if (import.meta.main) {
  const failed: string[] = [];
  for (const tier of TEST_TIERS) {
    const { code } = await new Deno.Command(Deno.execPath(), {
      args: ["task", tier, ...Deno.args],
      stdin: "null",
    }).spawn().status;
    if (code !== 0) failed.push(tier);
  }
  if (failed.length > 0) {
    await Deno.stderr.write(new TextEncoder().encode(`Failed tiers: ${failed.join(", ")}\n`));
    Deno.exit(1);
  }
}

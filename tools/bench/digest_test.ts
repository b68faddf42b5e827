import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { csvDigest, type Digest, digestMismatch, digestOf, scaled, unscaled } from "./digest.ts";

async function* records(
  rows: Record<string, string | null>[],
): AsyncGenerator<Record<string, string | null>> {
  yield* rows;
}

const ROWS = [
  {
    amount: "1.37",
    price: "0.4487989505",
    created_at: "2020-01-01 00:00:02+00",
    maybe: null,
    u: "c81e728d-9d4c-2f63-6f06-7f89cc14862c",
  },
  {
    amount: "-2.5",
    price: "12.0000000001",
    created_at: "2020-01-01 00:00:01+00",
    maybe: "v1",
    u: "c4ca4238-a0b9-2382-0dcc-509a6f75849b",
  },
];

Deno.test("scaled() and unscaled() keep decimals exact", () => {
  assert.equal(scaled("12.3", 2), 1230n);
  assert.equal(scaled("-0.05", 2), -5n);
  assert.equal(scaled("7", 10), 70_000_000_000n);
  assert.equal(unscaled(1230n, 2), "12.30");
  assert.equal(unscaled(-5n, 2), "-0.05");
  assert.equal(
    unscaled(scaled("123456789012345678.0123456789", 10), 10),
    "123456789012345678.0123456789",
  );
});

Deno.test("digestOf() sums, takes extremes, counts and hashes the sorted u values", async () => {
  const digest = await digestOf(records(ROWS));
  assert.deepEqual({ ...digest, uHash: undefined }, {
    rows: 2,
    sumAmount: "-1.13",
    maxPrice: "12.0000000001",
    minCreatedAt: "2020-01-01 00:00:01",
    countMaybe: 1,
    uHash: undefined,
  });
  // The order the rows come in does not matter.
  assert.deepEqual(await digestOf(records([...ROWS].reverse())), digest);
  assert.match(digest.uHash, /^[0-9a-f]{16}$/);
});

Deno.test("csvDigest() reads a CSV file with a header, empty fields as NULL", async () => {
  const dir = await mkdtemp(join(tmpdir(), "cr8tor-bench-digest-"));
  try {
    const file = join(dir, "w.csv");
    await writeFile(
      file,
      "amount,price,created_at,maybe,u\n" +
        ROWS.map((r) => [r.amount, r.price, r.created_at, r.maybe ?? "", r.u].join(",")).join(
          "\n",
        ) +
        "\n",
    );
    assert.deepEqual(await csvDigest(file), await digestOf(records(ROWS)));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

Deno.test("digestMismatch() says nothing for equal digests and names the cell otherwise", () => {
  const digest: Digest = {
    rows: 1,
    sumAmount: "1.00",
    maxPrice: "1.0000000000",
    minCreatedAt: "2020-01-01 00:00:01",
    countMaybe: 0,
    uHash: "0123456789abcdef",
  };
  assert.equal(digestMismatch("PostgreSQL csv", digest, { ...digest }), undefined);
  assert.equal(
    digestMismatch("MariaDB duckdb", { ...digest, rows: 2 }, digest),
    `Digest mismatch MariaDB duckdb: ${JSON.stringify({ ...digest, rows: 2 })} vs ${
      JSON.stringify(digest)
    }`,
  );
});

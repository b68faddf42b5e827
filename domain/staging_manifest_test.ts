import assert from "node:assert/strict";
import {
  emptyManifest,
  replaceDataset,
  signedManifestText,
  stagedContent,
  stagingDigest,
  type StagingManifest,
  stagingManifestKey,
  verifyManifestText,
} from "./staging_manifest.ts";

const RUN = { project: "Pr042", startTime: "20250611_093000" };
const KEY = await stagingManifestKey("publish-key-0123456789-abcdefghij");
const HASH = "a".repeat(128);

function aManifest(): StagingManifest {
  return replaceDataset(emptyManifest(), "onc", [
    { path: "data/outputs/onc/t.csv", sha512: HASH, bytes: 5 },
  ]).manifest;
}

/** The manifest file with one edit made to its parsed JSON, signature kept. */
async function edited(edit: (json: Record<string, unknown>) => void): Promise<string> {
  const json = JSON.parse(await signedManifestText(aManifest(), RUN, KEY));
  edit(json);
  return JSON.stringify(json);
}

Deno.test("verifyManifestText() reads back what signedManifestText() wrote for the run", async () => {
  const text = await signedManifestText(aManifest(), RUN, KEY);
  assert.deepEqual(await verifyManifestText(text, RUN, KEY), aManifest());
  assert.match(JSON.parse(text).mac, /^[0-9a-f]{64}$/);
});

Deno.test("verifyManifestText() refuses any change after signing", async (t) => {
  const unsigned = { problem: "is not signed by this service for this run" };
  const cases: [string, (json: Record<string, unknown>) => void][] = [
    ["a changed hash", (j) => ((j.files as { sha512: string }[])[0]!.sha512 = "b".repeat(128))],
    ["a changed size", (j) => ((j.files as { bytes: number }[])[0]!.bytes = 6)],
    ["an added entry", (j) =>
      (j.files as unknown[]).push({
        path: "data/outputs/onc/u.csv",
        sha512: HASH,
        bytes: 1,
        datasets: ["onc"],
      })],
    [
      "an entry pointing outside",
      (j) => ((j.files as { path: string }[])[0]!.path = "data/outputs/../../../../etc/passwd"),
    ],
    ["an absolute entry", (j) => ((j.files as { path: string }[])[0]!.path = "/etc/passwd")],
    ["a removed entry", (j) => (j.files = [])],
    ["a removed signature", (j) => delete j.mac],
    ["a signature of another length", (j) => (j.mac = "0".repeat(63))],
    ["an extra key", (j) => (j.note = "hello")],
  ];
  for (const [name, edit] of cases) {
    await t.step(name, async () => {
      assert.deepEqual(await verifyManifestText(await edited(edit), RUN, KEY), unsigned);
    });
  }
});

Deno.test("verifyManifestText() refuses a manifest of another run or key, or a version 1 one", async (t) => {
  const text = await signedManifestText(aManifest(), RUN, KEY);
  const unsigned = { problem: "is not signed by this service for this run" };
  await t.step("another project", async () => {
    assert.deepEqual(await verifyManifestText(text, { ...RUN, project: "Other" }, KEY), unsigned);
  });
  await t.step("another start time", async () => {
    const other = { ...RUN, startTime: "20250611_093001" };
    assert.deepEqual(await verifyManifestText(text, other, KEY), unsigned);
  });
  await t.step("another key (a rotation)", async () => {
    const rotated = await stagingManifestKey("publish-key-rotated-0123456789-abcdef");
    assert.deepEqual(await verifyManifestText(text, RUN, rotated), unsigned);
  });
  await t.step("version 1, unsigned", async () => {
    const v1 = JSON.stringify({ ...aManifest(), version: 1 });
    assert.deepEqual(await verifyManifestText(v1, RUN, KEY), unsigned);
  });
  await t.step("not JSON", async () => {
    assert.deepEqual(await verifyManifestText("{", RUN, KEY), { problem: "is not valid JSON" });
  });
});

Deno.test("verifyManifestText() refuses a signed manifest whose entries are not payload paths", async () => {
  // Only a bug could sign one: the content is still checked after the signature.
  for (const path of ["data/outputs/../x", "/abs", "data/outputs//x", "elsewhere/x"]) {
    const bad = { version: 2 as const, files: [{ path, sha512: HASH, bytes: 1, datasets: ["a"] }] };
    const text = await signedManifestText(bad, RUN, KEY);
    assert.deepEqual(await verifyManifestText(text, RUN, KEY), {
      problem: "is not a valid staging manifest",
    }, path);
  }
});

Deno.test("stagingManifestKey() derives a key that is not the material's own HMAC key", async () => {
  const material = "publish-key-0123456789-abcdefghij";
  const raw = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(material),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign", "verify"],
  );
  const text = await signedManifestText(aManifest(), RUN, raw);
  assert.deepEqual(await verifyManifestText(text, RUN, await stagingManifestKey(material)), {
    problem: "is not signed by this service for this run",
  });
  await assert.rejects(stagingManifestKey("short"), RangeError);
});

Deno.test("a stage's released tables are signed into the manifest, deterministically, and read back for the crate", async () => {
  const tables = [{
    name: "t",
    description: null,
    columns: [{ name: "id", datatype: "numeric(10,2)", description: "The id" }],
  }];
  const stage = () =>
    replaceDataset(
      emptyManifest(),
      "onc",
      [{ path: "data/outputs/onc/t.csv", sha512: HASH, bytes: 5 }],
      { disclosure: null, tables },
    ).manifest;
  assert.equal(stagingDigest(stage()), stagingDigest(stage()), "the same stage, the same digest");
  const read = await verifyManifestText(await signedManifestText(stage(), RUN, KEY), RUN, KEY);
  assert.deepEqual(read, stage());
  assert.deepEqual(stagedContent(stage()), {
    files: [{ path: "data/outputs/onc/t.csv", bytes: 5, sha512: HASH }],
    datasets: [{ schema_name: "onc", tables, disclosure: null }],
  });
  assert.deepEqual(stagedContent(aManifest()).datasets, [
    { schema_name: "onc", tables: [], disclosure: null },
  ]);
});

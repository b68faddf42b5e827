import assert from "node:assert/strict";
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { newUploadedDataSource } from "../../domain/upload_files.ts";
import { UploadQuarantine } from "./upload_quarantine.ts";

const source = (projectName: string) =>
  newUploadedDataSource({
    id: "0123456789abcdef0123456789abcdef",
    projectName,
    destination: "LSC",
    destinations: ["LSC"],
    owner: { id: "rita", issuer: "https://idp", name: "Rita" },
    at: new Date("2026-12-07T01:00:00Z"),
  });

Deno.test("UploadQuarantine.createSource() makes a data source once: of two makers one wins, the other leaves it", async () => {
  const root = await Deno.makeTempDir();
  try {
    const quarantine = await UploadQuarantine.open(join(root, "q"));
    const made = await Promise.all([
      quarantine.createSource(source("First")),
      quarantine.createSource(source("Second")),
    ]);
    assert.deepEqual(made.filter((m) => m).length, 1);
    const kept = await quarantine.source(source("x").id);
    assert.ok(kept?.project_name === "First" || kept?.project_name === "Second");
    await quarantine.saveSource({ ...kept!, state: "ready" });
    assert.equal(await quarantine.createSource(source("Third")), false);
    assert.equal((await quarantine.source(kept!.id))?.state, "ready", "left as it was");
    // Nothing is left aside, the record is owner-only, and the list shows it once.
    assert.deepEqual(await readdir(join(root, "q", "sources")), [`${kept!.id}.json`]);
    assert.equal(
      (await stat(join(root, "q", "sources", `${kept!.id}.json`))).mode & 0o777,
      0o600,
    );
    assert.equal((await quarantine.sources()).length, 1);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("UploadQuarantine.removeSource() removes the data source and its uploads' bytes, records and results", async () => {
  const root = await Deno.makeTempDir();
  try {
    const quarantine = await UploadQuarantine.open(join(root, "q"));
    const s = source("Survey");
    await quarantine.createSource(s);
    const upload = await quarantine.store.create(
      {
        id: "fedcba9876543210fedcba9876543210",
        size: 3,
        offset: 0,
        metadata: { filename: "a.csv", source: s.id },
        creation_date: new Date().toISOString(),
      } as unknown as Parameters<typeof quarantine.store.create>[0],
    );
    await quarantine.saveResult(upload.id, { sha512: "ab", bytes: 3, refusal: null, checks: null });
    assert.equal((await quarantine.files(s.id)).length, 1);
    await quarantine.removeSource(s.id);
    assert.equal(await quarantine.source(s.id), undefined);
    assert.deepEqual(await quarantine.files(s.id), []);
    for (const dir of ["sources", "files", "results"]) {
      assert.deepEqual(await readdir(join(root, "q", dir)), [], dir);
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

import assert from "node:assert/strict";
import {
  checkedUploadName,
  checkUploadFits,
  contentProblem,
  DEFAULT_UPLOAD_LIMITS,
  DEFAULT_UPLOAD_TYPES,
  newUploadedDataSource,
  parseUploadTypes,
  UploadNameUnsafeError,
  UploadRefusedError,
} from "./upload_files.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

Deno.test("upload names: NFC, no separators or dot-files, an allowed extension", () => {
  assert.deepEqual(checkedUploadName("Cafe\u0301.csv", DEFAULT_UPLOAD_TYPES), {
    name: "Café.csv",
    type: "csv",
  });
  assert.equal(checkedUploadName("data.PARQUET", DEFAULT_UPLOAD_TYPES).type, "parquet");
  for (
    const name of [
      "../etc/passwd.csv",
      "a/b.csv",
      "a\\b.csv",
      ".hidden.csv",
      "-x.csv",
      "a\u0000.csv",
    ]
  ) {
    assert.throws(
      () => checkedUploadName(name, DEFAULT_UPLOAD_TYPES),
      (e: unknown) => e instanceof UploadRefusedError && e.code === "upload_name_unsafe",
      name,
    );
  }
  for (const name of ["run.sh", "data.csv.exe", "noextension", "a.csv", "x.parquet"]) {
    const types = parseUploadTypes("tsv,txt");
    assert.throws(
      () => checkedUploadName(name, types),
      (e: unknown) => e instanceof UploadRefusedError && e.code === "upload_type_refused",
      name,
    );
  }
  assert.throws(() => parseUploadTypes("csv,exe"), UploadRefusedError);
});

Deno.test("content sniffing refuses executables, scripts and mislabelled files", () => {
  assert.equal(contentProblem(bytes("a,b\n1,2\n"), "csv"), undefined);
  assert.equal(contentProblem(new Uint8Array(), "csv"), undefined);
  assert.match(contentProblem(bytes("#!/bin/sh\necho"), "csv") ?? "", /executable/);
  assert.match(
    contentProblem(new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 2]), "txt") ?? "",
    /executable/,
  );
  assert.match(contentProblem(bytes("MZ\x90\x00"), "parquet") ?? "", /executable/);
  assert.match(contentProblem(bytes("a\n<script>x</script>"), "csv") ?? "", /script/);
  assert.match(contentProblem(new Uint8Array([0x61, 0, 0x62]), "tsv") ?? "", /NUL/);
  assert.match(contentProblem(bytes("a,b\n"), "parquet") ?? "", /PAR1/);
  assert.equal(contentProblem(bytes("PAR1\x15\x04"), "parquet"), undefined);
});

Deno.test("limits: per file, per data source in bytes and in files", () => {
  const limits = { ...DEFAULT_UPLOAD_LIMITS, maxFileBytes: 10, maxTotalBytes: 15, maxFiles: 2 };
  checkUploadFits(limits, { files: 0, bytes: 0 }, 10);
  checkUploadFits(limits, { files: 0, bytes: 0 }, 0);
  const code = (f: () => void) => {
    try {
      f();
    } catch (e) {
      return e instanceof UploadRefusedError ? e.code : "other";
    }
    return "none";
  };
  assert.equal(code(() => checkUploadFits(limits, { files: 0, bytes: 0 }, 11)), "upload_too_large");
  assert.equal(code(() => checkUploadFits(limits, { files: 1, bytes: 10 }, 6)), "upload_too_large");
  assert.equal(
    code(() => checkUploadFits(limits, { files: 2, bytes: 0 }, 1)),
    "upload_limit_reached",
  );
});

Deno.test("newUploadedDataSource() is one open data source, or a refusal naming what is wrong", () => {
  const input = {
    id: "0123456789abcdef0123456789abcdef",
    projectName: "  Survey 2024 ",
    destination: "LSC",
    destinations: ["LSC"],
    owner: { id: "rita", issuer: "https://idp", name: "Rita" },
    at: new Date("2026-12-07T01:02:03.456Z"),
  };
  assert.deepEqual(newUploadedDataSource(input), {
    id: input.id,
    project_name: "Survey 2024",
    project_start_time: "20261207_010203",
    destination: "LSC",
    owner: input.owner,
    created_at: "2026-12-07T01:02:03.456Z",
    state: "open",
    release_id: null,
    column_types: {},
  });
  assert.throws(
    () => newUploadedDataSource({ ...input, projectName: "../x" }),
    UploadNameUnsafeError,
  );
  assert.throws(
    () => newUploadedDataSource({ ...input, destination: "PROD" }),
    /Unknown destination "PROD"/,
  );
  assert.throws(() => newUploadedDataSource({ ...input, id: "../../etc" }), /32 lower-case hex/);
});

import assert from "node:assert/strict";
import { appendFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { manifestText, parseManifest } from "../domain/bagit.ts";
import {
  base64url,
  fromBase64url,
  publicReleaseKey,
  RECEIPT_TAG_FILE,
  type ReceiptClaims,
  signReceipt,
  verifyReceipt,
} from "../domain/release_receipt.ts";
import { bagProblems } from "../tests/support/bagit_check.ts";
import { newReleaseKey, sha512Hex, writeReleaseBag } from "../tests/support/release_fixtures.ts";

const TOOL = new URL("./verify_release.ts", import.meta.url).pathname;

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the tool as a researcher would, with read permission only (plus `extra`). */
async function verify(args: string[], extra: string[] = []): Promise<Run> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-config", "--allow-read", ...extra, TOOL, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code, stdout: text(stdout), stderr: text(stderr) };
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "verify-release-"));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function keysFile(dir: string, ...pairs: CryptoKeyPair[]): Promise<string> {
  const path = join(dir, `keys-${crypto.randomUUID()}.json`);
  const keys = await Promise.all(pairs.map((p) => publicReleaseKey(p.publicKey)));
  await writeFile(path, JSON.stringify({ keys }));
  return path;
}

/** Flips one bit of the byte at `offset` (negative: from the end). */
async function flipByte(path: string, offset: number): Promise<void> {
  const bytes = await readFile(path);
  const at = offset < 0 ? bytes.length + offset : offset;
  bytes[at] = bytes[at]! ^ 0x01;
  await writeFile(path, bytes);
}

const failed = (run: Run) => run.stdout.split("\n").filter((l) => l.startsWith("✗"));

for (const format of ["csv", "duckdb"] as const) {
  Deno.test(`verify-release: an intact ${format} release verifies (exit 0), with read permission only`, async () => {
    await withDir(async (dir) => {
      const key = await newReleaseKey();
      const bag = join(dir, "bag");
      await writeReleaseBag(bag, format, key);
      assert.deepEqual(await bagProblems(bag), [], "an independent BagIt check agrees");
      const run = await verify([bag, "--keys", await keysFile(dir, key)]);
      assert.equal(run.code, 0, run.stdout + run.stderr);
      assert.deepEqual(failed(run), []);
      assert.match(run.stdout, /✓ ro-crate-metadata\.json: \d+ File entit/);
      assert.match(
        run.stdout,
        /✓ release-receipt\.jws signs the SHA-512 of tagmanifest-sha512\.txt/,
      );
      assert.match(run.stdout, /Release verified: all 9 checks hold\./);
    });
  });
}

Deno.test("verify-release: a crate changed by one byte is detected", async () => {
  await withDir(async (dir) => {
    const key = await newReleaseKey();
    const bag = join(dir, "bag");
    await writeReleaseBag(bag, "csv", key);
    await flipByte(join(bag, "ro-crate-metadata.json"), 40);
    const run = await verify([bag, "--keys", await keysFile(dir, key)]);
    assert.equal(run.code, 1);
    assert.deepEqual(failed(run), [
      "✗ tagmanifest-sha512.txt: ro-crate-metadata.json has another SHA-512",
    ]);
  });
});

Deno.test("verify-release: a crate and tag manifest rewritten without the key fail the receipt", async () => {
  await withDir(async (dir) => {
    const key = await newReleaseKey();
    const bag = join(dir, "bag");
    await writeReleaseBag(bag, "csv", key);
    const crate = join(bag, "ro-crate-metadata.json");
    await writeFile(crate, (await readFile(crate, "utf8")).replace("Ada Steward", "Mallory"));
    await rewriteTagManifest(bag);
    const run = await verify([bag, "--keys", await keysFile(dir, key)]);
    assert.equal(run.code, 1);
    assert.deepEqual(failed(run), [
      "✗ release-receipt.jws signs another tagmanifest-sha512.txt than this bag's",
    ]);
  });
});

Deno.test("verify-release: a crate that does not match the payload is detected, even when signed", async () => {
  await withDir(async (dir) => {
    const key = await newReleaseKey();
    const bag = join(dir, "bag");
    await writeReleaseBag(bag, "csv", key);
    const path = join(bag, "ro-crate-metadata.json");
    const crate = JSON.parse(await readFile(path, "utf8"));
    crate["@graph"] = crate["@graph"].filter((e: { "@id": string }) =>
      e["@id"] !== "data/outputs/cohort/visits.csv"
    );
    const people = crate["@graph"].find((e: { "@id": string }) =>
      e["@id"] === "data/outputs/cohort/people.csv"
    );
    people.sha512 = "0".repeat(128);
    crate["@graph"].push({ "@id": "data/outputs/extra.csv", "@type": "File", sha512: "1" });
    await writeFile(path, JSON.stringify(crate));
    await resign(bag, await rewriteTagManifest(bag), key);
    const run = await verify([bag, "--keys", await keysFile(dir, key)]);
    assert.equal(run.code, 1);
    const [line, ...others] = failed(run);
    assert.deepEqual(others, []);
    assert.match(line!, /data\/outputs\/cohort\/people\.csv has another SHA-512/);
    assert.match(line!, /File data\/outputs\/extra\.csv is not in the payload/);
    assert.match(line!, /data\/outputs\/cohort\/visits\.csv has no File entity/);
  });
});

Deno.test("verify-release: a receipt changed by one byte is detected", async () => {
  await withDir(async (dir) => {
    const key = await newReleaseKey();
    const bag = join(dir, "bag");
    await writeReleaseBag(bag, "duckdb", key);
    // One byte of the claims changed (release id ...01 → ...02), the signature kept.
    const path = join(bag, RECEIPT_TAG_FILE);
    const [header, payload, signature] = (await readFile(path, "utf8")).trim().split(".");
    const claims = new TextDecoder().decode(fromBase64url(payload!)).replace(
      "000000000001",
      "000000000002",
    );
    await writeFile(
      path,
      `${header}.${base64url(new TextEncoder().encode(claims))}.${signature}\n`,
    );
    const run = await verify([bag, "--keys", await keysFile(dir, key)]);
    assert.equal(run.code, 1);
    assert.deepEqual(failed(run), ["✗ release-receipt.jws: The receipt signature does not verify"]);
  });
});

Deno.test("verify-release: a payload file changed by one byte is detected", async () => {
  await withDir(async (dir) => {
    const key = await newReleaseKey();
    const bag = join(dir, "bag");
    await writeReleaseBag(bag, "duckdb", key);
    await flipByte(join(bag, "data/outputs/database.duckdb"), 1000);
    const run = await verify([bag, "--keys", await keysFile(dir, key)]);
    assert.equal(run.code, 1);
    assert.deepEqual(failed(run), [
      "✗ manifest-sha512.txt: data/outputs/database.duckdb has another SHA-512",
    ]);
  });
});

Deno.test("verify-release: an extra payload file is detected", async () => {
  await withDir(async (dir) => {
    const key = await newReleaseKey();
    const bag = join(dir, "bag");
    await writeReleaseBag(bag, "csv", key);
    await writeFile(join(bag, "data/outputs/cohort/extra.csv"), "a\n1\n");
    const run = await verify([bag, "--keys", await keysFile(dir, key)]);
    assert.equal(run.code, 1);
    assert.deepEqual(failed(run), [
      "✗ data/: data/outputs/cohort/extra.csv is not in the manifest",
      "✗ Payload-Oxum 50.2 does not match 54.3",
    ]);
  });
});

Deno.test("verify-release: a manifest entry outside the bag or listed twice is detected", async () => {
  await withDir(async (dir) => {
    const key = await newReleaseKey();
    const bag = join(dir, "bag");
    await writeReleaseBag(bag, "csv", key);
    const manifest = join(bag, "manifest-sha512.txt");
    const [first] = (await readFile(manifest, "utf8")).split("\n");
    await appendFile(manifest, `${first}\n${"0".repeat(128)}  data/../bagit.txt\n`);
    const run = await verify([bag, "--keys", await keysFile(dir, key)]);
    assert.equal(run.code, 1);
    const [line] = failed(run);
    assert.match(
      line!,
      /^✗ manifest-sha512\.txt: data\/outputs\/cohort\/people\.csv is listed twice; /,
    );
    assert.match(line!, /"data\/\.\.\/bagit\.txt" is not a path inside the bag/);
  });
});

Deno.test("verify-release: an unlisted tag file is detected", async () => {
  await withDir(async (dir) => {
    const key = await newReleaseKey();
    const bag = join(dir, "bag");
    await writeReleaseBag(bag, "csv", key);
    await appendFile(join(bag, "notes.txt"), "added later\n");
    const run = await verify([bag, "--keys", await keysFile(dir, key)]);
    assert.equal(run.code, 1);
    assert.deepEqual(failed(run), ["✗ tagmanifest-sha512.txt: notes.txt is not listed"]);
  });
});

Deno.test("verify-release: after a key rotation an old release verifies with the retired key, not without it", async () => {
  await withDir(async (dir) => {
    const retired = await newReleaseKey();
    const current = await newReleaseKey();
    const bag = join(dir, "bag");
    await writeReleaseBag(bag, "csv", retired);
    const withRetired = await verify([bag, `--keys=${await keysFile(dir, current, retired)}`]);
    assert.equal(withRetired.code, 0, withRetired.stdout);
    const currentOnly = await verify([bag, "--keys", await keysFile(dir, current)]);
    assert.equal(currentOnly.code, 1);
    assert.equal(failed(currentOnly).length, 1);
    assert.match(failed(currentOnly)[0]!, /was signed with key "[^"]+", not in the key set/);
  });
});

Deno.test("verify-release: without --keys the receipt is not checked and the exit status is 1", async () => {
  await withDir(async (dir) => {
    const bag = join(dir, "bag");
    await writeReleaseBag(bag, "csv", await newReleaseKey());
    const run = await verify([bag]);
    assert.equal(run.code, 1);
    assert.deepEqual(failed(run), []);
    assert.match(run.stdout, /– release-receipt\.jws not checked: give the service's public keys/);
    assert.match(run.stdout, /Release NOT verified: 1 check\(s\) not made\./);
  });
});

Deno.test("verify-release: keys from a URL need --allow-net; usage errors exit 2", async () => {
  await withDir(async (dir) => {
    const key = await newReleaseKey();
    const bag = join(dir, "bag");
    await writeReleaseBag(bag, "csv", key);
    const jwks = JSON.stringify({ keys: [await publicReleaseKey(key.publicKey)] });
    await using server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      () => new Response(jwks, { headers: { "content-type": "application/json" } }),
    );
    const url = `http://127.0.0.1:${server.addr.port}/.well-known/release-keys`;
    const run = await verify([bag, "--keys", url], ["--allow-net=127.0.0.1"]);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.equal((await verify([])).code, 2);
    assert.equal((await verify([bag, "--keys"])).code, 2);
    assert.equal((await verify([join(dir, "missing")])).code, 2);
    const badKeys = join(dir, "bad.json");
    await writeFile(badKeys, '{"keys":[{"kty":"RSA"}]}');
    const bad = await verify([bag, "--keys", badKeys]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /not an Ed25519 public key/);
  });
});

Deno.test("verify-release: its module graph holds no npm package (it runs with Deno alone)", async () => {
  const { code, stdout } = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "--no-config", "--no-lock", TOOL],
    stdout: "piped",
  }).output();
  assert.equal(code, 0);
  const info = JSON.parse(new TextDecoder().decode(stdout)) as {
    modules: { specifier: string }[];
    npmPackages?: Record<string, unknown>;
  };
  const specifiers = info.modules.map((m) => m.specifier);
  assert.ok(specifiers.some((s) => s.endsWith("/domain/release_receipt.ts")));
  assert.deepEqual(specifiers.filter((s) => s.startsWith("npm:")), []);
  assert.deepEqual(Object.keys(info.npmPackages ?? {}), []);
  assert.deepEqual(
    specifiers.filter((s) => !s.startsWith("file:") && !s.startsWith("node:")),
    [],
  );
});

/** Rewrites the tag manifest over the current tag files (what a tamperer without the key can do). */
async function rewriteTagManifest(bag: string): Promise<string> {
  const path = join(bag, "tagmanifest-sha512.txt");
  const entries = parseManifest(await readFile(path, "utf8"));
  const text = manifestText(
    await Promise.all(
      entries.map(async (e) => ({
        path: e.path,
        sha512: sha512Hex(await readFile(join(bag, e.path))),
      })),
    ),
  );
  await writeFile(path, text);
  return text;
}

/** Signs a new receipt over the tag manifest's text with `key`, keeping the other claims. */
async function resign(bag: string, tagManifest: string, key: CryptoKeyPair): Promise<void> {
  const path = join(bag, RECEIPT_TAG_FILE);
  const kid = (await publicReleaseKey(key.publicKey)).kid;
  const old: ReceiptClaims = await verifyReceipt(await readFile(path, "utf8"), {
    keys: [await publicReleaseKey(key.publicKey)],
  });
  const claims = { ...old, kid, subject: { ...old.subject, sha512: sha512Hex(tagManifest) } };
  await writeFile(path, await signReceipt(claims, key.privateKey));
}

/**
 * An independent BagIt (RFC 8493) validator for tests. Checksums are verified by coreutils `sha512sum
 * --check --strict`, a different implementation from the one that wrote the bag; the rest follows the
 * RFC's validation order: required files, Payload-Oxum, every manifest entry, no unlisted payload file,
 * tag manifest.
 *
 * @module
 */
import { readdir, readFile, stat } from "node:fs/promises";
import { join, relative } from "node:path";

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...await walk(path));
    else out.push(path);
  }
  return out;
}

async function sha512sumCheck(bagDir: string, manifest: string): Promise<string | undefined> {
  const { code, stdout, stderr } = await new Deno.Command("sha512sum", {
    args: ["--check", "--strict", manifest],
    cwd: bagDir,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return code === 0 ? undefined : `${manifest}: ${decode(stdout)}${decode(stderr)}`;
}

/** Returns every problem found in the bag; an empty list means the bag is valid. */
export async function bagProblems(bagDir: string): Promise<string[]> {
  const problems: string[] = [];
  const read = (name: string) => readFile(join(bagDir, name), "utf8").catch(() => undefined);
  const bagit = await read("bagit.txt");
  if (bagit !== "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n") {
    problems.push("bagit.txt is missing or wrong");
  }
  const manifest = await read("manifest-sha512.txt");
  if (manifest === undefined) return [...problems, "manifest-sha512.txt is missing"];
  if (!(await stat(join(bagDir, "data")).then((s) => s.isDirectory(), () => false))) {
    problems.push("data/ is missing");
  }

  const listed = manifest.split("\n").filter((l) => l !== "").map((l) => l.split(/[ \t]+/, 2)[1]!);
  const payload = (await walk(join(bagDir, "data"))).map((p) => relative(bagDir, p));
  const info = await read("bag-info.txt") ?? "";
  const oxum = /^Payload-Oxum: (\d+)\.(\d+)$/m.exec(info);
  if (oxum === null) problems.push("bag-info.txt has no Payload-Oxum");
  else {
    let bytes = 0;
    for (const p of payload) bytes += (await stat(join(bagDir, p))).size;
    if (Number(oxum[1]) !== bytes || Number(oxum[2]) !== payload.length) {
      problems.push(`Payload-Oxum ${oxum[1]}.${oxum[2]} does not match ${bytes}.${payload.length}`);
    }
  }
  if (!/^Bagging-Date: \d{4}-\d{2}-\d{2}$/m.test(info)) {
    problems.push("bag-info.txt has no Bagging-Date");
  }
  for (const p of payload) {
    if (!listed.includes(p)) problems.push(`payload file ${p} is not in the manifest`);
  }
  for (const p of listed) {
    if (!payload.includes(p)) problems.push(`manifest lists ${p}, which is missing`);
  }
  const payloadCheck = await sha512sumCheck(bagDir, "manifest-sha512.txt");
  if (payloadCheck !== undefined) problems.push(payloadCheck);
  if (await read("tagmanifest-sha512.txt") === undefined) {
    problems.push("tagmanifest-sha512.txt is missing");
  } else {
    const tagCheck = await sha512sumCheck(bagDir, "tagmanifest-sha512.txt");
    if (tagCheck !== undefined) problems.push(tagCheck);
  }
  return problems;
}

/**
 * Uploads in a real browser (`docs/uploads.md`): a file chosen on the upload page goes up in tus chunks,
 * the page is reloaded mid-upload, choosing the file again resumes from the server's offset, and the
 * page then shows the file's SHA-512, checks and preview, axe-clean.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import type { Route } from "playwright-core";
import { UploadQuarantine } from "../../adapters/filesystem/upload_quarantine.ts";
import { assertAccessible, browserTest, screenshot, signIn } from "../support/browser.ts";
import { startDashboardWorld } from "../support/dashboard_world.ts";

const CHUNK = 16 * 1024;

/** A CSV of about 200 KiB: a dozen chunks. */
function aCsv(): Uint8Array {
  const lines = ["id,name,score,day"];
  for (let i = 1; i <= 6000; i++) {
    lines.push(`${i},person ${i},${(i % 97) / 4},2024-01-${String((i % 28) + 1).padStart(2, "0")}`);
  }
  return new TextEncoder().encode(lines.join("\n") + "\n");
}

browserTest("an upload survives a page reload and resumes from the server's offset", async (b) => {
  const root = await Deno.makeTempDir({ prefix: "uploads-browser-" });
  try {
    const quarantine = await UploadQuarantine.open(join(root, "quarantine"));
    await using s = await startDashboardWorld({ uploads: { quarantine, chunkBytes: CHUNK } });
    const csv = aCsv();
    const path = join(root, "survey.csv");
    await Deno.writeFile(path, csv);

    const page = await signIn(b, s, "rita");
    await page.goto(`${s.baseUrl}/ui/uploads`);
    await assertAccessible(page, "uploads");
    await page.fill("#project_name", "Browser survey");
    await page.getByRole("button", { name: "Create" }).click();
    await page.getByRole("heading", { name: "Upload: Browser survey" }).waitFor();
    await assertAccessible(page, "upload page");

    // Three PATCHes go through; the connection then drops on every PATCH (the client retries with
    // backoff), and the page is reloaded.
    let patches = 0;
    const stall = async (route: Route) => {
      if (route.request().method() === "PATCH" && ++patches > 3) {
        return await route.abort("connectionreset");
      }
      await route.continue();
    };
    await page.route("**/ui/uploads/tus/**", stall);
    await page.setInputFiles("#files", path);
    for (let i = 0; i < 100 && patches <= 3; i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(patches > 3, "the upload started");
    await page.unroute("**/ui/uploads/tus/**", stall);
    await page.reload();
    await page.getByText(`${3 * CHUNK} of ${csv.length} bytes (unfinished)`).waitFor();

    // Choosing the same file again resumes: the first PATCH after the reload starts where the
    // server stopped.
    const offsets: number[] = [];
    await page.route("**/ui/uploads/tus/**", async (route) => {
      const request = route.request();
      if (request.method() === "PATCH") {
        offsets.push(Number(await request.headerValue("upload-offset")));
      }
      await route.continue();
    });
    await page.setInputFiles("#files", path);
    const sha512 = createHash("sha512").update(csv).digest("hex");
    await page.getByText(sha512).waitFor({ timeout: 30_000 });
    assert.equal(offsets[0], 3 * CHUNK, `resumed at ${offsets[0]}`);
    assert.equal(await page.locator("[data-rows]").innerText(), "6000");
    assert.match(await page.locator("main").innerText(), /person 3/, "the preview is shown");
    await assertAccessible(page, "upload page with checks");
    await screenshot(page, "upload.png");

    const [file] = await quarantine.files((await quarantine.sources())[0]?.id ?? "");
    assert.equal(file?.result?.sha512, sha512);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

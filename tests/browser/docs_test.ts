/**
 * `/docs` in a real browser: Debian's chromium loads the API reference of a metadata service started as
 * a process, with every request that would leave loopback refused, and finds the operations listed, no
 * console error (a Content-Security-Policy violation is one), the `x-api-key` field in the Authorize
 * dialog, and the key it takes sent with "Try it out".
 *
 * Without chromium the test is ignored, except under `CI=true`, where it fails.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { newServiceKeys, startService, writeAllowList } from "../support/processes.ts";

/** chromium: `CHROMIUM_PATH`, or Debian's. */
const CHROMIUM = Deno.env.get("CHROMIUM_PATH") || "/usr/bin/chromium";
const HAS_CHROMIUM = (() => {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
})();
const IN_CI = Deno.env.get("CI") === "true";

/** Whether a URL stays on this machine. */
function isLoopback(url: string): boolean {
  const { protocol, hostname } = new URL(url);
  if (protocol === "data:" || protocol === "blob:" || protocol === "about:") return true;
  return hostname === "127.0.0.1" || hostname === "localhost" || hostname === "[::1]";
}

Deno.test({
  name: HAS_CHROMIUM || IN_CI
    ? "/docs renders Swagger UI offline: operations listed, no console error, x-api-key in Authorize and sent"
    : "/docs renders Swagger UI offline (ignored: no chromium; set CHROMIUM_PATH)",
  ignore: !HAS_CHROMIUM && !IN_CI,
  fn: async () => {
    assert.ok(
      HAS_CHROMIUM,
      `chromium is missing at ${CHROMIUM} (CI=true: apt-get install -y chromium)`,
    );
    const dir = await Deno.makeTempDir({ prefix: "cr8tor-docs-browser-" });
    const secrets = join(dir, "secrets");
    await Deno.mkdir(secrets);
    const keys = newServiceKeys();
    for (const [name, value] of Object.entries(keys)) {
      await Deno.writeTextFile(join(secrets, name), value);
    }
    await using metadata = await startService("metadata", {
      SECRETS_MNT_PATH: secrets,
      ALLOWED_SOURCES_FILE: await writeAllowList(dir, []),
    });
    const browser = await chromium.launch({ executablePath: CHROMIUM });
    try {
      const page = await browser.newPage();
      const leaving: string[] = [];
      const problems: string[] = [];
      await page.route("**/*", (route) => {
        const url = route.request().url();
        if (isLoopback(url)) return route.continue();
        leaving.push(url);
        return route.abort("blockedbyclient");
      });
      page.on("console", (message) => {
        if (message.type() === "error" || message.type() === "warning") {
          problems.push(`${message.type()}: ${message.text()}`);
        }
      });
      page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));

      const res = await page.goto(`${metadata.url}/docs`);
      assert.equal(res?.status(), 200);
      await page.locator(".opblock").first().waitFor({ timeout: 30_000 });
      const paths = await page.locator(".opblock-summary-path").allTextContents();
      for (const path of ["/metadata/project", "/health", "/ready"]) {
        assert.ok(
          paths.some((p) => p.replace(/\u200b/g, "") === path),
          `${path} in ${paths.join(", ")}`,
        );
      }

      await page.locator("button.authorize").first().click();
      const dialog = page.locator(".dialog-ux .modal-ux");
      await dialog.waitFor();
      const text = await dialog.textContent() ?? "";
      assert.match(text, /ApiKey\s*\(apiKey\)/);
      assert.match(text, /Name:\s*x-api-key/);
      assert.match(text, /In:\s*header/);
      assert.deepEqual(problems, [], "no console error or warning while rendering");

      const field = dialog.locator("input");
      assert.equal(await field.count(), 1, "one field: the key");

      await field.fill(keys.metadataserviceapikey);
      await dialog.locator("button.authorize").click();
      await dialog.locator("button.btn-done").click();
      const operation = page.locator(".opblock", {
        has: page.locator('.opblock-summary-path[data-path="/metadata/project"]'),
      });
      await operation.locator(".opblock-summary").click();
      await operation.locator("button.try-out__btn").click();
      await operation.locator("button.execute").click();
      const reply = operation.locator(".live-responses-table .response");
      await reply.waitFor();
      // Past the key check, the service refuses the example's source: the allow-list is empty.
      const body = await reply.locator(".response-col_description").textContent() ?? "";
      assert.match(body, /"code": "source_not_allowed"/, `the key was sent: ${body}`);

      assert.deepEqual(leaving, [], "no request leaves loopback");
      assert.deepEqual(problems, [
        "error: Failed to load resource: the server responded with a status of 403 (Forbidden)",
      ], "nothing but the refusal of the example's source is reported");
    } finally {
      await browser.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/**
 * The browser tests' helpers: Debian's chromium driven by playwright-core, axe-core on a page, the
 * screenshots kept in `docs/ui/`, and the sign-in through the DEMO identity provider.
 *
 * @module
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { DEMO_PASSWORD } from "../../tools/demo_identity_provider.ts";
import type { DashboardWorld } from "./dashboard_world.ts";

const ROOT = join(import.meta.dirname ?? ".", "..", "..");
const SCREENSHOTS = join(ROOT, "docs", "ui");

/**
 * Takes the page's screenshot (always, so the rendering is exercised) and keeps it in `docs/ui/` only
 * with `UPDATE_SCREENSHOTS=1`, so a test run leaves the checkout as it was.
 */
export async function screenshot(page: Page, name: string): Promise<void> {
  const keep = Deno.env.get("UPDATE_SCREENSHOTS") === "1";
  const image = await page.screenshot({ fullPage: true });
  assert.ok(image.byteLength > 0, `screenshot ${name} is empty`);
  if (keep) await Deno.writeFile(join(SCREENSHOTS, name), image);
}

/** Debian's chromium: `CHROMIUM_PATH`, else the one on the PATH; under CI=true it must be there. */
function chromiumPath(): string | undefined {
  const configured = Deno.env.get("CHROMIUM_PATH");
  if (configured !== undefined && configured !== "") return configured;
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    for (const name of ["chromium", "chromium-browser"]) {
      try {
        if (Deno.statSync(join(dir, name)).isFile) return join(dir, name);
      } catch {
        // not here
      }
    }
  }
  if (Deno.env.get("CI") === "true") {
    throw new Error(
      "chromium is missing: install it (apt-get install -y chromium) or set CHROMIUM_PATH",
    );
  }
  return undefined;
}

const executablePath = chromiumPath();
/** A test in a fresh chromium (ignored when there is none, outside CI). */
export const browserTest = (name: string, fn: (b: Browser) => Promise<void>) =>
  Deno.test({
    name,
    ignore: executablePath === undefined,
    sanitizeOps: false,
    sanitizeResources: false,
    async fn() {
      const browser = await chromium.launch({
        ...(executablePath === undefined ? {} : { executablePath }),
        args: ["--no-sandbox"],
      });
      try {
        await fn(browser);
      } finally {
        await browser.close();
      }
    },
  });

const AXE_SOURCE = readFileSync(
  createRequire(import.meta.url).resolve("axe-core/axe.min.js"),
  "utf8",
);

/** Runs axe-core on the page (through the DevTools protocol, so the page's CSP does not block it). */
export async function assertAccessible(page: Page, what: string): Promise<void> {
  await page.evaluate(AXE_SOURCE);
  const violations = await page.evaluate(
    `axe.run(document).then((result) => result.violations.map((v) =>
      ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(" ")) })))`,
  ) as { id: string; impact: string; nodes: string[] }[];
  const serious = violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(serious, [], `${what}: ${JSON.stringify(serious)}`);
}

/** Signs in as a demo person in a fresh browser context; returns its page on "Awaiting me". */
export async function signIn(browser: Browser, s: DashboardWorld, login: string): Promise<Page> {
  const context = await browser.newContext();
  context.setDefaultTimeout(10_000);
  const page = await context.newPage();
  await page.goto(`${s.baseUrl}/ui/`);
  await page.getByRole("link", { name: "Sign in with your organisation" }).click();
  await page.getByText("DEMO ONLY").waitFor();
  await page.fill("#login", login);
  await page.fill("#password", DEMO_PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Awaiting me" }).waitFor();
  return page;
}

/**
 * The dashboard in a real browser (Debian's chromium driven by playwright-core), signed in through the
 * DEMO identity provider, with axe-core on every page. Screenshots of the main pages go to `docs/ui/`.
 */
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { assertAccessible, browserTest, screenshot, signIn } from "../support/browser.ts";
import { newRelease } from "../../domain/release.ts";
import { aTransferRequest } from "../support/requests.ts";
import { type DashboardWorld, startDashboardWorld } from "../support/dashboard_world.ts";
import { DEMO_PEOPLE } from "../../tools/demo_identity_provider.ts";

/** Records a decision on the release page. */
async function decide(page: Page, s: DashboardWorld, id: string, action: string, decision: string) {
  await page.goto(`${s.baseUrl}/ui/releases/${id}`);
  const form = page.locator(`form[data-action="${action}"]`);
  await form.locator(`input[name="decision"][value="${decision}"]`).check();
  await form.locator("textarea").fill(`${decision} from the browser`);
  await form.getByRole("button", { name: "Record decision" }).click();
  await page.waitForLoadState();
  if (!(await page.locator("main").innerText()).includes("Recorded.")) {
    throw new Error(`not recorded: ${await page.locator("main").innerText()}`);
  }
}

async function aRelease(s: DashboardWorld): Promise<string> {
  const refused = await s.packageProject();
  assert.equal(refused.status, 409);
  return (refused.body.payload as { release_id: string }).release_id;
}

browserTest("every demo person signs in and sees their name and roles", async (browser) => {
  await using s = await startDashboardWorld();
  for (const person of DEMO_PEOPLE) {
    const page = await signIn(browser, s, person.login);
    assert.match(
      await page.locator("header").innerText(),
      new RegExp(person.name.replace(/[()]/g, ".")),
    );
    await page.context().close();
  }
});

browserTest(
  "a release goes through both gates with different people, then is published",
  async (browser) => {
    await using s = await startDashboardWorld();
    const id = await aRelease(s);

    const igor = await signIn(browser, s, "igor");
    await assertAccessible(igor, "awaiting me");
    await screenshot(igor, "awaiting-me.png");

    // Before anything is packaged, the IG approver sees what is requested: tables, columns and types.
    await igor.goto(`${s.baseUrl}/ui/releases/${id}`);
    const requested = igor.locator('table[data-table="tumour_stage"]');
    await requested.waitFor();
    assert.match(await requested.innerText(), /stage_id\s+bigint\s+surrogate key/);
    await assertAccessible(igor, "a release before any package");

    // Sam holds two roles and fills one approval type per gate: after the IG approval the form no longer
    // offers DATA_ENGINEER at that gate, and a forged submission is refused with a clear message.
    const sam = await signIn(browser, s, "sam");
    await decide(sam, s, id, "sign_off|INFORMATION_GOVERNANCE", "approve");
    await sam.getByText("Recorded.").waitFor();
    const offered = await sam.locator(
      `form[data-action="sign_off|DATA_ENGINEER"] input[name="decision"]`,
    ).evaluateAll((inputs) => inputs.map((input) => (input as unknown as { value: string }).value));
    assert.ok(!offered.includes("approve"), JSON.stringify(offered));
    await sam.evaluate(`(() => {
      const form = document.querySelector('form[data-action="sign_off|DATA_ENGINEER"]');
      const radio = form.querySelector('input[name="decision"]');
      radio.value = "approve";
      radio.checked = true;
      form.submit();
    })()`);
    await sam.waitForLoadState();
    const refusal = await sam.getByRole("alert").innerText();
    await assertAccessible(sam, "a refusal");
    assert.match(refusal, /separation of duties|one approval type|already/i, refusal);
    assert.doesNotMatch(refusal, /\.ts:\d+/);

    const dana = await signIn(browser, s, "dana");
    await decide(dana, s, id, "sign_off|DATA_ENGINEER", "approve");
    await dana.getByText("Recorded.").waitFor();

    const packaged = await s.packageProject();
    assert.equal(packaged.status, 200, JSON.stringify(packaged.body));

    const olive = await signIn(browser, s, "olive");
    await olive.goto(`${s.baseUrl}/ui/releases/${id}`);
    await assertAccessible(olive, "a release");
    await screenshot(olive, "release.png");
    await decide(olive, s, id, "disclosure|OUTPUT_CHECKER", "approve");
    await olive.getByText("Recorded.").waitFor();
    const oscar = await signIn(browser, s, "oscar");
    await decide(oscar, s, id, "disclosure|OUTPUT_CHECKER", "approve");
    await oscar.getByText("Recorded.").waitFor();

    const published = await s.api("/project/publish", {
      project_name: "Pr042",
      project_start_time: "20250611_093000",
      destination: { name: "LSC", type: "filestore", format: "csv" },
    });
    assert.equal(published.status, 200, await published.text());

    const otto = await signIn(browser, s, "otto");
    await otto.getByRole("link", { name: "Releases and runs" }).click();
    await otto.getByRole("heading", { name: "Releases and runs" }).waitFor();
    await assertAccessible(otto, "releases and runs");
    await screenshot(otto, "releases-and-runs.png");
    await otto.getByRole("link", { name: "Published" }).click();
    await otto.getByText("sha512sum --check manifest-sha512.txt").first().waitFor();
    await assertAccessible(otto, "published");
    await screenshot(otto, "published.png");

    // An operator may revoke (the world's publish service has no revoke: the release stays revoking).
    await otto.goto(`${s.baseUrl}/ui/releases/${id}`);
    await otto.getByRole("button", { name: "Revoke release" }).waitFor();
    await assertAccessible(otto, "release with the revoke form");
    await otto.locator("#revoke-reason").fill("consent withdrawn");
    await otto.getByRole("button", { name: "Revoke release" }).click();
    await otto.getByRole("heading", { name: "Revocation" }).waitFor();
    await assertAccessible(otto, "release being revoked");
  },
);

browserTest("the requester cannot approve their own release", async (browser) => {
  await using s = await startDashboardWorld();
  const igor = await signIn(browser, s, "igor");
  const { release } = await s.store.ensure(newRelease({
    project_name: "OwnProject",
    project_start_time: "20250611_093000",
    destination: { type: "filestore", name: "LSC" },
    requested_by: { kind: "person", id: "igor", issuer: s.idp.issuer },
  }, new Date().toISOString()));
  await igor.goto(`${s.baseUrl}/ui/releases/${release.id}`);
  // The page offers no decision to the requester ...
  assert.match(await igor.locator("main").innerText(), /nothing you may decide/);
  assert.equal(await igor.locator("form[data-action]").count(), 0);
  // ... and a decision forged into the page (with the session's own CSRF token) is refused.
  await igor.evaluate(`(() => {
    const form = document.createElement("form");
    form.method = "post";
    form.action = location.pathname + "/decisions";
    const fields = {
      csrf: document.querySelector('input[name="csrf"]').value,
      action: "sign_off|INFORMATION_GOVERNANCE",
      decision: "approve",
    };
    for (const [name, value] of Object.entries(fields)) {
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      input.value = value;
      form.append(input);
    }
    document.body.append(form);
    form.submit();
  })()`);
  await igor.waitForURL(/\/decisions$/);
  assert.match(await igor.getByRole("alert").innerText(), /you requested it/);
  await assertAccessible(igor, "a refusal");
  const fresh = await s.store.get(release.id);
  assert.equal(fresh?.decisions.length, 0);
});

browserTest("a rejected release: the package is refused", async (browser) => {
  await using s = await startDashboardWorld();
  const id = await aRelease(s);
  const dana = await signIn(browser, s, "dana");
  await decide(dana, s, id, "sign_off|DATA_ENGINEER", "reject");
  await dana.getByText("Recorded.").waitFor();
  assert.match(await dana.locator("main").innerText(), /rejected/);
  const refused = await s.packageProject();
  assert.equal(refused.status, 409);
  assert.equal((refused.body.payload as { code: string }).code, "release_rejected");
});

browserTest("CSP and cookie flags; a form from another origin is refused", async (browser) => {
  await using s = await startDashboardWorld();
  const id = await aRelease(s);
  const context = await browser.newContext();
  const page = await context.newPage();
  const first = await page.goto(`${s.baseUrl}/ui/`);
  const csp = first?.headers()["content-security-policy"] ?? "";
  assert.match(csp, /default-src 'self'/);
  assert.match(csp, /script-src 'self'/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.doesNotMatch(csp, /unsafe-inline/);
  await assertAccessible(page, "sign in");
  await context.close();

  const igor = await signIn(browser, s, "igor");
  const cookies = await igor.context().cookies(`${s.baseUrl}/ui/`);
  const session = cookies.find((c) => c.name === "cr8tor_session");
  assert.ok(session);
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, "Lax");
  assert.equal(session.path, "/ui");

  // Another origin (localhost is another site than 127.0.0.1) posts a decision form to the dashboard.
  const evil = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () =>
    new Response(
      `<!doctype html><html lang="en"><title>evil</title><body><form id="f" method="post"
        action="${s.baseUrl}/ui/releases/${id}/decisions"><input name="csrf" value="guess">
        <input name="action" value="sign_off|INFORMATION_GOVERNANCE"><input name="decision" value="approve">
        <button>go</button></form></body></html>`,
      { headers: { "content-type": "text/html" } },
    ));
  try {
    await igor.goto(`http://localhost:${evil.addr.port}/`);
    await igor.click("button");
    await igor.getByRole("alert").waitFor();
    assert.match(await igor.getByRole("alert").innerText(), /Refused|session/);
  } finally {
    await evil.shutdown();
  }
  assert.equal((await s.store.get(id))?.decisions.length, 0);
});

browserTest("the decision form is reachable and usable with the keyboard", async (browser) => {
  await using s = await startDashboardWorld();
  const id = await aRelease(s);
  const igor = await signIn(browser, s, "igor");
  await igor.goto(`${s.baseUrl}/ui/releases/${id}`);
  await igor.keyboard.press("Tab");
  assert.equal(await igor.evaluate("document.activeElement?.textContent"), "Skip to content");
  let reached = false;
  for (let i = 0; i < 40 && !reached; i++) {
    await igor.keyboard.press("Tab");
    reached = await igor.evaluate(
      `document.activeElement?.textContent === "Record decision"`,
    ) as boolean;
  }
  assert.ok(reached, "the Record decision button is reachable with Tab");
  await igor.keyboard.press("Enter");
  await igor.getByText("Recorded.").waitFor();
});

browserTest(
  "an operator watches a package's progress bar advance and finish, and cancels another",
  async (browser) => {
    await using s = await startDashboardWorld();
    // Enough rows (one row repeated) for the package to take a few seconds.
    s.world.rows = new Map([[
      "oncology.tumour_stage",
      new Array(1_500_000).fill(["1", "T1", "x"]),
    ]]);
    const id = await aRelease(s);
    for (
      const [login, action] of [["igor", "sign_off|INFORMATION_GOVERNANCE"], [
        "dana",
        "sign_off|DATA_ENGINEER",
      ]] as const
    ) {
      const page = await signIn(browser, s, login);
      await decide(page, s, id, action, "approve");
      await page.context().close();
    }
    const otto = await signIn(browser, s, "otto");

    const started = await s.api("/project/package", aTransferRequest(), {
      prefer: "respond-async",
    });
    assert.equal(started.status, 202, await started.clone().text());
    const runId = (await started.json()).payload.id as string;
    await otto.goto(`${s.baseUrl}/ui/runs?project=Pr042`);
    const run = otto.locator(`[data-run-events="${runId}"]`);
    const bar = run.locator(`[data-table="tumour_stage"] progress`);
    const seen: number[] = [];
    for (let i = 0; i < 600; i++) {
      const state = await run.locator("[data-run-state]").innerText();
      if (await bar.count() > 0) {
        const value = await bar.evaluate((b) => (b as unknown as { position: number }).position);
        if (seen.at(-1) !== value) seen.push(value);
      }
      if (state === "succeeded") break;
      await otto.waitForTimeout(100);
    }
    assert.equal(await run.locator("[data-run-state]").innerText(), "succeeded");
    assert.equal(seen.at(-1), 1, `the bar ends full: ${JSON.stringify(seen)}`);
    assert.ok(
      seen.some((value) => value > 0 && value < 1),
      `the bar advanced before finishing: ${JSON.stringify(seen)}`,
    );

    // A second package of the same run: the operator cancels it from the page.
    const second = await s.api("/project/package", aTransferRequest(), { prefer: "respond-async" });
    assert.equal(second.status, 202);
    const secondId = (await second.json()).payload.id as string;
    await otto.goto(`${s.baseUrl}/ui/runs?project=Pr042`);
    await otto.getByRole("button", { name: `Cancel run ${secondId.slice(0, 8)}` }).click();
    await otto.getByRole("heading", { name: "Releases and runs" }).waitFor();
    const cancelled = await (await s.get(`/runs/${secondId}`)).json();
    assert.equal(cancelled.payload.state, "cancelled");
  },
);

import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import getAbsoluteFSPath from "swagger-ui-dist/absolute-path.js";
import type { Person, PersonVerifier } from "../../ports/identity.ts";
import { FakeWorld, METADATA_KEY } from "../../tests/support/apps.ts";
import { DOCS_CSP, INIT_SCRIPT } from "./api_docs.ts";
import { createServiceApp } from "./create_app.ts";
import { memoryLogger } from "./log.ts";

const URL_BASE = "http://test.local";

type App = { request(input: string, init?: RequestInit): Response | Promise<Response> };

/** The `src` and `href` URLs of a page, in order. */
function urlsOf(html: string): string[] {
  return [...html.matchAll(/\b(?:src|href)="([^"]*)"/g)].map((m) => m[1]!);
}

/** Asserts the headers every docs reply carries. */
function assertDocsHeaders(res: Response, what: string): void {
  assert.equal(res.headers.get("content-security-policy"), DOCS_CSP, what);
  assert.equal(res.headers.get("x-content-type-options"), "nosniff", what);
}

const EXPECTED_TYPES: Record<string, RegExp> = {
  ".css": /^text\/css; charset=utf-8$/,
  ".js": /^text\/javascript; charset=utf-8$/,
  ".png": /^image\/png$/,
};

async function assertServesDocs(app: App, service: string): Promise<void> {
  const page = await app.request(`${URL_BASE}/docs`);
  assert.equal(page.status, 200, service);
  assert.match(page.headers.get("content-type") ?? "", /^text\/html; charset=utf-8$/i, service);
  assert.equal(page.headers.get("cache-control"), "no-cache", service);
  assertDocsHeaders(page, service);
  const html = await page.text();
  assert.doesNotMatch(html, /https?:\/\//, `${service}: the page names no absolute URL`);
  assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, `${service}: no inline script`);
  assert.doesNotMatch(html, /<style|\sstyle=/, `${service}: no inline style`);

  const assets = urlsOf(html).filter((url) => url.startsWith("docs/assets/"));
  assert.deepEqual(
    assets.map((url) => url.split("/").pop()),
    ["favicon-32x32.png", "swagger-ui.css", "swagger-ui-bundle.js", "init.js"],
    service,
  );
  for (const url of assets) {
    const res = await app.request(`${URL_BASE}/${url}`);
    assert.equal(res.status, 200, url);
    const ext = url.slice(url.lastIndexOf("."));
    assert.match(res.headers.get("content-type") ?? "", EXPECTED_TYPES[ext]!, url);
    assert.equal(res.headers.get("cache-control"), "public, max-age=31536000, immutable", url);
    assertDocsHeaders(res, url);
    const body = new Uint8Array(await res.arrayBuffer());
    const name = url.split("/").pop()!;
    const expected = name === "init.js"
      ? new TextEncoder().encode(INIT_SCRIPT)
      : new Uint8Array(await readFile(join(getAbsoluteFSPath(), name)));
    assert.deepEqual(body, expected, `${url} is the package's file`);
  }
}

Deno.test("GET /docs serves Swagger UI and its assets from this origin, on every service", async (t) => {
  using world = new FakeWorld();
  for (
    const [service, app] of [
      ["metadata", world.metadataApp()],
      ["publish", world.publishApp()],
      ["approval", world.approvalApp()],
    ] as const
  ) {
    await t.step(service, () => assertServesDocs(app, service));
  }
});

Deno.test("the docs' Content-Security-Policy allows this origin only, nothing inline or eval'd, no framing", () => {
  const directives = new Map(
    DOCS_CSP.split(";").map((d) => d.trim().split(/\s+/)).map(([name, ...v]) => [name!, v]),
  );
  assert.deepEqual(directives.get("default-src"), ["'none'"]);
  assert.deepEqual(directives.get("frame-ancestors"), ["'none'"]);
  for (const name of ["script-src", "style-src", "connect-src", "font-src"]) {
    assert.deepEqual(directives.get(name), ["'self'"], name);
  }
  assert.deepEqual(directives.get("img-src"), ["'self'", "data:"]);
  assert.doesNotMatch(DOCS_CSP, /unsafe|https?:|\*/);
});

Deno.test("the docs' start-up script names no absolute URL and reads openapi.json", () => {
  assert.doesNotMatch(INIT_SCRIPT, /https?:\/\//);
  assert.match(INIT_SCRIPT, /"openapi\.json"/);
  assert.match(INIT_SCRIPT, /validatorUrl: null/, "no online validator badge");
});

Deno.test("the docs' assets: public to read, nothing else", async (t) => {
  using world = new FakeWorld();
  const app = world.metadataApp();
  const html = await (await app.request(`${URL_BASE}/docs`)).text();
  const bundle = urlsOf(html).find((url) => url.endsWith("/swagger-ui-bundle.js"))!;
  const prefix = bundle.slice(0, bundle.lastIndexOf("/"));

  await t.step("HEAD answers without a key", async () => {
    const res = await app.request(`${URL_BASE}/${bundle}`, { method: "HEAD" });
    assert.equal(res.status, 200);
    await res.body?.cancel();
  });
  for (
    const [what, path] of [
      ["another version", "docs/assets/0.0.1/swagger-ui-bundle.js"],
      ["another file of the package", `${prefix}/package.json`],
      ["a source map", `${prefix}/swagger-ui-bundle.js.map`],
      ["an escape from the package", `${prefix}/..%2Fpackage.json`],
      ["a deeper path", `${prefix}/x/swagger-ui.css`],
    ] as const
  ) {
    await t.step(`${what} is not found`, async () => {
      const res = await app.request(`${URL_BASE}/${path}`);
      assert.equal(res.status, 404, path);
      await res.body?.cancel();
    });
  }
  await t.step("POST needs the key", async () => {
    const res = await app.request(`${URL_BASE}/${bundle}`, { method: "POST" });
    assert.equal(res.status, 403);
    await res.body?.cancel();
    const keyed = await app.request(`${URL_BASE}/${bundle}`, {
      method: "POST",
      headers: { "x-api-key": METADATA_KEY },
    });
    assert.equal(keyed.status, 404);
    await keyed.body?.cancel();
  });
});

/** A verifier for the OpenAPI document only: no request here carries a token. */
const NO_PEOPLE: PersonVerifier = {
  verify: (): Promise<Person> => Promise.reject(new Error("not used")),
};

Deno.test("the Authorize box offers the key, and the person's token where a service takes one", async () => {
  using world = new FakeWorld();
  const keyOnly = await (await world.publishApp().request(`${URL_BASE}/openapi.json`)).json();
  assert.deepEqual(keyOnly.components.securitySchemes, {
    ApiKey: { type: "apiKey", in: "header", name: "x-api-key" },
  });

  const withPeople = createServiceApp({
    service: "approval",
    title: "Gateway",
    apiKey: "approval-key-0123456789",
    log: memoryLogger(),
    maxBodyBytes: 1024,
    readiness: () => Promise.resolve([]),
    detailPrefix: "",
    people: { verifier: NO_PEOPLE, credentialFor: () => "key_or_person" },
  });
  const doc = await (await withPeople.request(`${URL_BASE}/openapi.json`)).json();
  assert.deepEqual(Object.keys(doc.components.securitySchemes).sort(), ["ApiKey", "PersonToken"]);
  assert.equal(doc.components.securitySchemes.PersonToken.scheme, "bearer");
});

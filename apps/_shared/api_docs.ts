/**
 * `/docs`: Swagger UI, the API reference of every service, served from the files of the pinned
 * `swagger-ui-dist` npm package (deno.json). Nothing comes from the internet (secure data environments
 * are often offline), and `deno compile` embeds the package in the binary, as the module graph reaches it
 * through `absolute-path.js`.
 *
 * - `GET /docs`: the page. It reads `openapi.json`; its Authorize box offers the document's security
 *   schemes (`ApiKey`, the `x-api-key` header; `PersonToken`, a bearer token, where a service takes one).
 * - `GET /docs/assets/<version>/<file>`: the stylesheet, the bundle and {@link INIT_SCRIPT}, cached for a
 *   year (`immutable`): the package version in the path changes when the package does.
 *
 * Every reply carries {@link DOCS_CSP}: scripts, styles, fonts and requests from this origin only, images
 * from this origin and `data:` (the stylesheet's icons are `data:` SVGs), no `'unsafe-inline'`, no
 * `'unsafe-eval'` (Swagger UI 5 needs neither: its start-up code is a file here, not an inline script, and
 * React sets style attributes through the CSSOM, which `style-src` does not govern), and no framing.
 *
 * @module
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Env, Hono } from "hono";
import getAbsoluteFSPath from "swagger-ui-dist/absolute-path.js";

/** Where the docs live. */
export const DOCS_PATH = "/docs";

/** The prefix of the docs' assets. */
export const DOCS_ASSETS_PREFIX = "/docs/assets/";

/** The Content-Security-Policy of the page and its assets. */
export const DOCS_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/**
 * Starts Swagger UI on `#swagger-ui` with `openapi.json` (relative, so a path prefix in front of the
 * service still works), without the online validator badge (it would call validator.swagger.io).
 */
export const INIT_SCRIPT = `"use strict";
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: new URL("openapi.json", document.baseURI).href,
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    tryItOutEnabled: false,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
`;

/** The package's files the page loads, with their content types. */
const PACKAGE_ASSETS: Readonly<Record<string, string>> = {
  "swagger-ui.css": "text/css; charset=utf-8",
  "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
  "favicon-32x32.png": "image/png",
};

/** The name of {@link INIT_SCRIPT} among the assets. */
const INIT_ASSET = "init.js";

const YEAR_SECONDS = 365 * 24 * 60 * 60;

/** One asset, read once. */
interface Asset {
  readonly body: Uint8Array<ArrayBuffer>;
  readonly contentType: string;
}

/** Where the package is and which version it is. */
interface Package {
  readonly dir: string;
  readonly version: string;
}

let loaded: Promise<Package> | undefined;

/** Finds the package directory and reads its version (once per process). */
function swaggerUiPackage(): Promise<Package> {
  loaded ??= (async () => {
    const dir = getAbsoluteFSPath();
    const { version } = JSON.parse(await readFile(join(dir, "package.json"), "utf8"));
    if (typeof version !== "string" || !/^[\w.-]+$/.test(version)) {
      throw new Error("swagger-ui-dist/package.json has no usable version");
    }
    return { dir, version };
  })();
  return loaded;
}

const assetCache = new Map<string, Promise<Asset>>();

/** An asset by file name, or undefined when it is not one of the docs' assets. */
function assetNamed(pkg: Package, name: string): Promise<Asset> | undefined {
  if (name !== INIT_ASSET && !Object.hasOwn(PACKAGE_ASSETS, name)) return undefined;
  let asset = assetCache.get(name);
  if (asset === undefined) {
    asset = name === INIT_ASSET
      ? Promise.resolve({
        body: new TextEncoder().encode(INIT_SCRIPT),
        contentType: "text/javascript; charset=utf-8",
      })
      : readFile(join(pkg.dir, name)).then((bytes) => ({
        body: new Uint8Array(bytes),
        contentType: PACKAGE_ASSETS[name]!,
      }));
    assetCache.set(name, asset);
  }
  return asset;
}

/** The page: no inline script or style, every URL relative to `/docs`. */
export function docsHtml(title: string, version: string): string {
  const safeTitle = title.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
  const assets = `docs/assets/${version}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${safeTitle}</title>
<link rel="icon" type="image/png" href="${assets}/favicon-32x32.png">
<link rel="stylesheet" href="${assets}/swagger-ui.css">
</head>
<body>
<main id="swagger-ui"><noscript><p>${safeTitle}: the API reference needs JavaScript. The contract is
<a href="openapi.json">openapi.json</a>.</p></noscript></main>
<script src="${assets}/swagger-ui-bundle.js"></script>
<script src="${assets}/${INIT_ASSET}"></script>
</body>
</html>
`;
}

/** Sets the headers every docs reply carries. */
function securityHeaders(headers: Headers): void {
  headers.set("Content-Security-Policy", DOCS_CSP);
  headers.set("X-Content-Type-Options", "nosniff");
  headers.set("Referrer-Policy", "no-referrer");
}

/** Registers `GET /docs` and `GET /docs/assets/<version>/<file>` on a service's app. */
export function registerApiDocs<E extends Env>(app: Hono<E>, title: string): void {
  app.get(DOCS_PATH, async (c) => {
    const { version } = await swaggerUiPackage();
    const res = c.html(docsHtml(title, version));
    securityHeaders(res.headers);
    res.headers.set("Cache-Control", "no-cache");
    return res;
  });
  app.get(`${DOCS_ASSETS_PREFIX}:version/:file`, async (c) => {
    const pkg = await swaggerUiPackage();
    const asset = c.req.param("version") === pkg.version
      ? assetNamed(pkg, c.req.param("file"))
      : undefined;
    if (asset === undefined) return c.notFound();
    const { body, contentType } = await asset;
    const res = c.body(body, 200, {
      "Content-Type": contentType,
      "Cache-Control": `public, max-age=${YEAR_SECONDS}, immutable`,
    });
    securityHeaders(res.headers);
    return res;
  });
}

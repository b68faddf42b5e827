/**
 * The release RO-Crate checked by independent implementations, offline: `jsonld` (the JSON-LD
 * processor) expands every kind of crate with a document loader that serves only a vendored copy of the
 * RO-Crate 1.1 context (`tests/support/ro_crate_1_1_context.jsonld`, CC0, from the RO-Crate
 * specification), so a term the context does not define would be dropped and caught here; and
 * `ro-crate` (ro-crate-js) loads and validates the crate with `fetch` replaced, so it can never go
 * online.
 *
 * @module
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import jsonld from "jsonld";
import type { ReleaseProvenance } from "../../domain/provenance.ts";
import { releaseCrate, RO_CRATE_CONTEXT } from "../../domain/release_crate.ts";
import { decision, filesOf, payloadOf, provenance } from "../support/release_fixtures.ts";

const SCHEMA = "http://schema.org/";
/** The base RO-Crate 1.1 suggests for a crate with no web address (arcp, a fixed UUID). */
const BASE = "arcp://uuid,5f0c8b2e-0000-4000-8000-000000000000/";
const CONTEXT_DOCUMENT = JSON.parse(
  await readFile(new URL("../support/ro_crate_1_1_context.jsonld", import.meta.url), "utf8"),
);

/** Every URL anything tried to fetch during these tests (there must be none but the context). */
const fetched: string[] = [];
const realFetch = globalThis.fetch;

/** A `fetch` that serves the vendored RO-Crate 1.1 context and refuses everything else. */
function offlineFetch(input: string | URL | Request): Promise<Response> {
  const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
  fetched.push(url);
  if (url === RO_CRATE_CONTEXT) {
    return Promise.resolve(
      new Response(JSON.stringify(CONTEXT_DOCUMENT), {
        headers: { "content-type": "application/ld+json" },
      }),
    );
  }
  return Promise.reject(new Error(`offline test: refused to fetch ${url}`));
}

/** The JSON-LD document loader: the vendored RO-Crate 1.1 context, and nothing else. */
function documentLoader(url: string) {
  if (url !== RO_CRATE_CONTEXT) {
    return Promise.reject(new Error(`offline test: refused to load ${url}`));
  }
  return Promise.resolve({ contextUrl: null, documentUrl: url, document: CONTEXT_DOCUMENT });
}

const crates: [string, ReleaseProvenance][] = [
  ["CSV filestore", provenance()],
  [
    "DuckDB filestore",
    provenance({
      destination: { type: "filestore", name: "LSC", format: "duckdb" },
      files: filesOf(payloadOf("duckdb")),
    }),
  ],
  [
    "PostgreSQL destination",
    provenance({
      destination: { type: "postgresql", name: "analysis_db", format: null },
      files: [],
      destination_tables: [{ schema: "pr042", table: "people", opal_resource: "Pr042.people" }],
    }),
  ],
  [
    "every decision kind, checks off, no source",
    provenance({
      decisions: [decision("approve"), decision("reject"), decision("request_changes")],
      disclosure_thresholds: null,
      datasets: provenance().datasets.map((d) => ({ ...d, disclosure: null })),
      source: null,
    }),
  ],
];

type Node = Record<string, unknown>;

for (const [name, p] of crates) {
  Deno.test(`release crate (${name}): JSON-LD expansion keeps every term and type`, async () => {
    const crate = releaseCrate(p);
    const graph = crate["@graph"] as Node[];
    const expanded = await jsonld.expand(crate as jsonld.JsonLdDocument, {
      base: BASE,
      documentLoader,
      // deno-lint-ignore no-explicit-any
    } as any) as Node[];
    // Flattened input: one expanded node per entity, keyed by its @id resolved against the base.
    const byId = new Map(expanded.map((n) => [n["@id"] as string, n]));
    const expandedOf = (id: string) => byId.get(new URL(id, BASE).href);
    assert.equal(expanded.length, graph.length);
    for (const entity of graph) {
      const node = expandedOf(entity["@id"] as string);
      assert.ok(node, `${entity["@id"]} expands`);
      const dropped = Object.keys(entity).filter((k) => !k.startsWith("@")).length -
        Object.keys(node).filter((k) => !k.startsWith("@")).length;
      assert.equal(dropped, 0, `no property of ${entity["@id"]} is dropped`);
      for (const key of Object.keys(node).filter((k) => !k.startsWith("@"))) {
        assert.match(key, /^https?:\/\//, `${key} of ${entity["@id"]} is an IRI`);
      }
      for (const type of node["@type"] as string[]) {
        assert.match(type, /^https?:\/\//, `@type ${type} of ${entity["@id"]} is an IRI`);
      }
    }
    const root = expandedOf("./")!;
    for (const term of ["name", "description", "license", "datePublished", "hasPart", "mentions"]) {
      assert.ok(`${SCHEMA}${term}` in root, `root has schema:${term}`);
    }
    assert.ok("http://purl.org/dc/terms/conformsTo" in root);
    const types = new Set(expanded.flatMap((n) => n["@type"] as string[]));
    for (const t of ["Dataset", "CreateAction", "SoftwareApplication", "Project", "CreativeWork"]) {
      assert.ok(types.has(`${SCHEMA}${t}`), `a ${t}`);
    }
    for (
      const file of expanded.filter((n) =>
        (n["@type"] as string[]).includes(`${SCHEMA}MediaObject`)
      )
    ) {
      for (
        const iri of [
          `${SCHEMA}contentSize`,
          `${SCHEMA}encodingFormat`,
          "https://w3id.org/ro/terms/workflow-run#sha512",
        ]
      ) assert.ok(iri in file, `${file["@id"]} has ${iri}`);
    }
    assert.equal(
      expanded.filter((n) => (n["@type"] as string[]).includes(`${SCHEMA}MediaObject`)).length,
      p.files.length,
    );
    const columns = expanded.filter((n) => "http://www.w3.org/ns/csvw#datatype" in n);
    assert.equal(
      columns.length,
      p.datasets.flatMap((d) => d.tables.flatMap((t) => t.columns)).length,
    );
    const assessments = expanded.filter((n) =>
      (n["@type"] as string[]).includes(`${SCHEMA}AssessAction`)
    );
    assert.equal(
      assessments.length,
      p.decisions.length + (p.disclosure_thresholds === null ? 0 : 1),
    );
    for (const a of assessments) {
      for (const term of ["agent", "actionStatus", "additionalType", "object", "name"]) {
        assert.ok(`${SCHEMA}${term}` in a, `${a["@id"]} has schema:${term}`);
      }
    }
  });
}

Deno.test("release crate: ro-crate-js reads its root, files and actions and finds no error, offline", async () => {
  fetched.length = 0;
  globalThis.fetch = offlineFetch as typeof fetch;
  try {
    // Imported only now: ro-crate-js keeps the fetch it sees when it loads.
    const roCrate = await import("ro-crate");
    const { ROCrate } = roCrate;
    // `validate` is exported by the package but missing from its type declarations.
    const { validate } = roCrate as unknown as {
      validate(crate: unknown, files?: Record<string, unknown>): Promise<unknown[]>;
    };
    const p = provenance({ decisions: [decision("approve"), decision("reject")] });
    const crate = new ROCrate(releaseCrate(p), { array: true, link: true });
    const root = crate.rootDataset;
    assert.equal(root["@id"], "./");
    const parts = root.hasPart.map((f: Node) => f["@id"]).sort();
    assert.deepEqual(parts, p.files.map((f) => f.path).sort());
    for (const file of p.files) {
      const entity = crate.getEntity(file.path);
      assert.deepEqual(entity["@type"], ["File"]);
      assert.deepEqual(entity.sha512, [file.sha512]);
    }
    const mentioned = root.mentions.map((a: Node) => crate.getEntity(a["@id"] as string));
    const typesOf = (t: string) =>
      mentioned.filter((a: Node) => (a["@type"] as string[]).includes(t));
    assert.equal(typesOf("CreateAction").length, 2, "package and publish");
    assert.equal(typesOf("AssessAction").length, 3, "two sign-offs and the disclosure checks");
    // Its validator, with the context resolved (served offline) and the payload files on "disk".
    await crate.resolveContext();
    const files = Object.fromEntries(p.files.map((f) => [f.path, { exists: true }]));
    const results = await validate(crate, files) as { status: string; message: string }[];
    assert.deepEqual(results.filter((r) => r.status !== "success"), []);
    assert.ok(
      results.some((r) => /RO-Crate JSON-LD Context/.test(r.message)),
      "context recognised",
    );
    assert.deepEqual(fetched.filter((url) => url !== RO_CRATE_CONTEXT), [], "nothing else fetched");
  } finally {
    globalThis.fetch = realFetch;
  }
});

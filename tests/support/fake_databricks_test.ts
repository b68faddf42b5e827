import assert from "node:assert/strict";
import { type FakeDatabricks, startFakeDatabricks } from "./fake_databricks.ts";
import type { FakeWorkspace } from "./fake_databricks_workspace.ts";

const UC = "/api/2.1/unity-catalog";
const ID = "fake-client";
const SECRET = "fake-secret";

function aWorkspace(): FakeWorkspace {
  const column = { name: "id", type_name: "LONG", type_text: "bigint", nullable: false };
  return {
    catalog: "main",
    clientId: ID,
    clientSecret: SECRET,
    tokenLifetimeSeconds: 900,
    schemas: [{
      name: "Sales",
      comment: "Sales data",
      tables: [
        {
          name: "orders",
          table_type: "MANAGED",
          comment: "One row per order",
          columns: [
            column,
            { name: "total", type_name: "DECIMAL", type_text: "decimal(12,2)", comment: "GBP" },
          ],
          primaryKey: ["id"],
          rows: [],
        },
        { name: "b", table_type: "VIEW", columns: [column], rows: [] },
        { name: "c", table_type: "EXTERNAL", columns: [column], rows: [] },
      ],
    }],
  };
}

/** Sends requests to the fake over TLS, trusting its CA. */
function clientFor(fake: FakeDatabricks) {
  const http = Deno.createHttpClient({ caCerts: [fake.caCertificate] });
  return {
    async call(
      path: string,
      init: RequestInit = {},
    ): Promise<{ status: number; body: Record<string, unknown> }> {
      const response = await fetch(`${fake.url}${path}`, { ...init, client: http });
      const text = await response.text();
      return { status: response.status, body: text === "" ? {} : JSON.parse(text) };
    },
    async token(
      form = "grant_type=client_credentials&scope=all-apis",
      credentials = `${ID}:${SECRET}`,
    ) {
      return await this.call("/oidc/v1/token", {
        method: "POST",
        headers: {
          authorization: `Basic ${btoa(credentials)}`,
          "content-type": "application/x-www-form-urlencoded",
        },
        body: form,
      });
    },
    [Symbol.dispose]() {
      http.close();
    },
  };
}

Deno.test("startFakeDatabricks() issues client-credentials tokens only to the right client", async () => {
  await using fake = await startFakeDatabricks(aWorkspace());
  using client = clientFor(fake);

  const ok = await client.token();
  assert.equal(ok.status, 200);
  assert.match(String(ok.body.access_token), /^dapi-fake-[0-9a-f]{32}$/);
  assert.equal(ok.body.token_type, "Bearer");
  assert.equal(ok.body.expires_in, 900);
  assert.equal(fake.tokensIssued, 1);

  const refused = {
    status: 401,
    body: { error: "invalid_client", error_description: "Client authentication failed" },
  };
  assert.deepEqual(await client.token(undefined, `${ID}:wrong`), refused);
  assert.deepEqual(await client.token("grant_type=client_credentials&scope=sql"), refused);
  assert.deepEqual(await client.token("grant_type=password&scope=all-apis"), refused);
  assert.equal(fake.tokensIssued, 1);
});

Deno.test("startFakeDatabricks() requires a valid Bearer token for Unity Catalog", async () => {
  await using fake = await startFakeDatabricks(aWorkspace());
  using client = clientFor(fake);
  const unauthenticated = {
    status: 401,
    body: { error_code: "UNAUTHENTICATED", message: "Invalid access token." },
  };

  assert.deepEqual(await client.call(`${UC}/schemas/main.Sales`), unauthenticated);
  const token = String((await client.token()).body.access_token);
  const auth = { headers: { authorization: `Bearer ${token}` } };
  assert.equal((await client.call(`${UC}/schemas/main.Sales`, auth)).status, 200);

  fake.expireTokens();
  assert.deepEqual(await client.call(`${UC}/schemas/main.Sales`, auth), unauthenticated);
  // The log never holds credentials.
  const log = JSON.stringify(fake.requests);
  assert.ok(!log.includes(token));
  assert.ok(!log.includes(btoa(`${ID}:${SECRET}`)));
});

Deno.test("startFakeDatabricks() serves schemas, paged table lists and tables as Databricks does", async () => {
  await using fake = await startFakeDatabricks(aWorkspace());
  using client = clientFor(fake);
  const token = String((await client.token()).body.access_token);
  const auth = { headers: { authorization: `Bearer ${token}` } };

  const schema = await client.call(`${UC}/schemas/MAIN.sales`, auth);
  assert.equal(schema.status, 200);
  assert.equal(schema.body.full_name, "main.Sales");
  assert.equal(schema.body.comment, "Sales data");

  const unpaginated = await client.call(`${UC}/tables?catalog_name=main&schema_name=Sales`, auth);
  assert.equal(unpaginated.status, 400);
  assert.equal(unpaginated.body.error_code, "INVALID_PARAMETER_VALUE");

  const first = await client.call(
    `${UC}/tables?catalog_name=main&schema_name=Sales&max_results=50`,
    auth,
  );
  const firstTables = first.body.tables as Record<string, unknown>[];
  assert.deepEqual(firstTables.map((t) => t.name), ["orders", "b"]);
  assert.equal(typeof first.body.next_page_token, "string");
  const second = await client.call(
    `${UC}/tables?catalog_name=main&schema_name=Sales&max_results=50&page_token=${
      encodeURIComponent(String(first.body.next_page_token))
    }`,
    auth,
  );
  assert.deepEqual((second.body.tables as Record<string, unknown>[]).map((t) => t.name), ["c"]);
  assert.ok(!("next_page_token" in second.body));
  const bogus = await client.call(
    `${UC}/tables?catalog_name=main&schema_name=Sales&max_results=50&page_token=bogus`,
    auth,
  );
  assert.equal(bogus.status, 400);

  const orders = await client.call(`${UC}/tables/main.Sales.orders?include_browse=true`, auth);
  assert.equal(orders.status, 200);
  assert.equal(orders.body.full_name, "main.Sales.orders");
  assert.equal(orders.body.table_type, "MANAGED");
  assert.equal(orders.body.comment, "One row per order");
  assert.deepEqual(orders.body.table_constraints, [
    { primary_key_constraint: { name: "orders_pk", child_columns: ["id"] } },
  ]);
  const [id, total] = orders.body.columns as Record<string, unknown>[];
  assert.deepEqual(
    { ...id, type_json: JSON.parse(String(id?.type_json)) },
    {
      name: "id",
      type_text: "bigint",
      type_name: "LONG",
      type_json: { name: "id", type: "long", nullable: false, metadata: {} },
      type_precision: 0,
      type_scale: 0,
      position: 0,
      nullable: false,
    },
  );
  assert.equal(total?.position, 1);
  assert.equal(total?.nullable, true);
  assert.equal(total?.comment, "GBP");
  assert.equal(total?.type_precision, 12);
  assert.equal(total?.type_scale, 2);

  const view = await client.call(`${UC}/tables/main.Sales.b`, auth);
  assert.ok(!("comment" in view.body));
  assert.ok(!("table_constraints" in view.body));
});

Deno.test("startFakeDatabricks() answers missing objects with Databricks' 404 bodies", async () => {
  await using fake = await startFakeDatabricks(aWorkspace());
  using client = clientFor(fake);
  const token = String((await client.token()).body.access_token);
  const auth = { headers: { authorization: `Bearer ${token}` } };

  assert.deepEqual(await client.call(`${UC}/schemas/main.nope`, auth), {
    status: 404,
    body: { error_code: "SCHEMA_DOES_NOT_EXIST", message: "Schema 'main.nope' does not exist." },
  });
  assert.deepEqual(await client.call(`${UC}/schemas/other.Sales`, auth), {
    status: 404,
    body: { error_code: "CATALOG_DOES_NOT_EXIST", message: "Catalog 'other' does not exist." },
  });
  assert.deepEqual(await client.call(`${UC}/tables/main.Sales.nope`, auth), {
    status: 404,
    body: {
      error_code: "TABLE_DOES_NOT_EXIST",
      message: "Table 'main.Sales.nope' does not exist.",
    },
  });
  assert.equal(
    (await client.call(`${UC}/tables?catalog_name=main&schema_name=nope&max_results=1`, auth))
      .body.error_code,
    "SCHEMA_DOES_NOT_EXIST",
  );
  assert.equal((await client.call(`${UC}/volumes`, auth)).body.error_code, "ENDPOINT_NOT_FOUND");
});

Deno.test("startFakeDatabricks() failNext() fails the next matching request once", async () => {
  await using fake = await startFakeDatabricks(aWorkspace());
  using client = clientFor(fake);
  const token = String((await client.token()).body.access_token);
  const auth = { headers: { authorization: `Bearer ${token}` } };
  fake.failNext(`${UC}/tables`, 403, { error_code: "PERMISSION_DENIED", message: "No." });

  assert.equal((await client.call(`${UC}/schemas/main.Sales`, auth)).status, 200);
  assert.deepEqual(await client.call(`${UC}/tables/main.Sales.b`, auth), {
    status: 403,
    body: { error_code: "PERMISSION_DENIED", message: "No." },
  });
  assert.equal((await client.call(`${UC}/tables/main.Sales.b`, auth)).status, 200);
});

Deno.test("startFakeDatabricks() hands authenticated /sql/ POSTs to the Thrift handler", async () => {
  const seen: string[] = [];
  await using fake = await startFakeDatabricks(aWorkspace(), {
    thrift: (req, res) => {
      const chunks: Uint8Array[] = [];
      req.on("data", (chunk: Uint8Array) => chunks.push(chunk));
      req.on("end", () => {
        seen.push(`${req.url} ${new TextDecoder().decode(concat(chunks))}`);
        res.writeHead(200, { "content-type": "application/x-thrift" });
        res.end("pong");
      });
    },
  });
  await using bare = await startFakeDatabricks(aWorkspace());
  using client = clientFor(fake);
  using bareClient = clientFor(bare);
  const token = String((await client.token()).body.access_token);
  const post = (t: string): RequestInit => ({
    method: "POST",
    headers: { authorization: `Bearer ${t}` },
    body: "ping",
  });

  assert.equal((await client.call("/sql/1.0/warehouses/abc", post("wrong"))).status, 401);
  assert.deepEqual(seen, []);
  const http = Deno.createHttpClient({ caCerts: [fake.caCertificate] });
  try {
    const response = await fetch(`${fake.url}/sql/1.0/warehouses/abc`, {
      ...post(token),
      client: http,
    });
    assert.equal(response.status, 200);
    assert.equal(await response.text(), "pong");
  } finally {
    http.close();
  }
  assert.deepEqual(seen, ["/sql/1.0/warehouses/abc ping"]);

  const bareToken = String((await bareClient.token()).body.access_token);
  assert.equal((await bareClient.call("/sql/1.0/warehouses/abc", post(bareToken))).status, 404);
});

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

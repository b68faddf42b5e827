import assert from "node:assert/strict";
import type { Context } from "hono";
import { OidcPersonVerifier } from "../../adapters/oidc/oidc_person_verifier.ts";
import type { PersonVerifier } from "../../ports/identity.ts";
import {
  type KeyServer,
  startKeyServer,
  TEST_AUDIENCE,
} from "../../tests/support/identity_providers.ts";
import { createServiceApp } from "./create_app.ts";
import { memoryLogger } from "./log.ts";
import { bearerTokenOf, type Credential, personOf } from "./person_auth.ts";

const KEY = "service-key-0123456789abcdef";
const URL_BASE = "http://test.local";

/** A service with a person route, a key route and a route taking either. */
function anApp(verifier: PersonVerifier | undefined) {
  const log = memoryLogger();
  function credentialFor(c: Context): Credential {
    if (c.req.path.startsWith("/releases")) return "person";
    if (c.req.path === "/either") return "key_or_person";
    return "key";
  }
  const app = createServiceApp({
    service: "approval",
    title: "Test",
    apiKey: KEY,
    log,
    maxBodyBytes: 1024,
    readiness: () => Promise.resolve([]),
    detailPrefix: "",
    people: verifier === undefined ? undefined : { verifier, credentialFor },
  });
  for (const path of ["/releases", "/things", "/either"]) {
    app.get(
      path,
      (c) => c.json({ status: "success", payload: { person: personOf(c) ?? null } }, 200),
    );
  }
  app.post(
    "/releases/r1/decisions",
    async (c) =>
      c.json(
        { status: "success", payload: { body: await c.req.json(), who: personOf(c)?.id } },
        200,
      ),
  );
  return { app, log };
}

async function get(
  app: ReturnType<typeof anApp>["app"],
  path: string,
  headers: Record<string, string>,
) {
  const res = await app.request(`${URL_BASE}${path}`, { headers });
  return { res, json: await res.json() };
}

async function withServer(fn: (server: KeyServer, verifier: OidcPersonVerifier) => Promise<void>) {
  await using server = await startKeyServer();
  const verifier = new OidcPersonVerifier({ issuerUrl: server.issuer, audience: TEST_AUDIENCE });
  await fn(server, verifier);
}

Deno.test("requirePerson() through createServiceApp: a person's token and a key never stand in for each other", async (t) => {
  await withServer(async (server, verifier) => {
    const { app, log } = anApp(verifier);
    const token = await server.sign({ sub: "pat", realm_access: { roles: ["ig-approver"] } });

    await t.step("a person route admits a valid bearer token and sets the person", async () => {
      const { res, json } = await get(app, "/releases", { authorization: `Bearer ${token}` });
      assert.equal(res.status, 200);
      assert.deepEqual(json.payload.person, {
        id: "pat",
        issuer: server.issuer,
        name: "Pat Person",
        roles: ["ig-approver"],
      });
      const lower = await get(app, "/releases", { authorization: `bearer ${token}` });
      assert.equal(lower.res.status, 200);
    });

    await t.step("a person route reads the body after the token is checked (POST)", async () => {
      const res = await app.request(`${URL_BASE}/releases/r1/decisions`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ decision: "approve" }),
      });
      assert.equal(res.status, 200);
      assert.deepEqual((await res.json()).payload, { body: { decision: "approve" }, who: "pat" });
    });

    const refusals: [string, Record<string, string>, RegExp][] = [
      ["no credentials", {}, /no Authorization header/],
      ["the service key in x-api-key", { "x-api-key": KEY }, /x-api-key/],
      [
        "a valid token together with the service key",
        { authorization: `Bearer ${token}`, "x-api-key": KEY },
        /x-api-key/,
      ],
      ["the service key as a bearer token", { authorization: `Bearer ${KEY}` }, /compact JWS/],
      ["another scheme", { authorization: `Basic ${btoa("a:b")}` }, /not of the form Bearer/],
      ["a bare token", { authorization: token }, /not of the form Bearer/],
      [
        "a token for another audience",
        { authorization: `Bearer ${await server.sign({ aud: "https://other.test" })}` },
        /claim "aud"/,
      ],
    ];
    for (const [name, headers, reason] of refusals) {
      await t.step(`a person route answers 401 for ${name}`, async () => {
        log.lines.length = 0;
        const { res, json } = await get(app, "/releases", headers);
        assert.equal(res.status, 401);
        assert.equal(res.headers.get("www-authenticate"), 'Bearer error="invalid_token"');
        assert.equal(json.status, "error");
        assert.equal(json.payload.code, "invalid_token");
        assert.equal(
          json.payload.detail,
          "The bearer token is missing or is not a valid token of a person for this service",
        );
        assert.equal(json.payload.request_id, res.headers.get("x-request-id"));
        const line = log.lines.find((l) => l.includes('"request_failed"'));
        assert.ok(line !== undefined, "the refusal is logged");
        assert.match(JSON.parse(line).reason, reason);
        assert.ok(!log.lines.some((l) => l.includes(token) || l.includes(KEY)), "never logged");
      });
    }

    await t.step(
      "a key route refuses a person's token (403), whatever header carries it",
      async () => {
        for (
          const headers of [
            { authorization: `Bearer ${token}` },
            { "x-api-key": token },
            { "x-api-key": `Bearer ${token}` },
          ]
        ) {
          const { res, json } = await get(app, "/things", headers);
          assert.equal(res.status, 403);
          assert.equal(json.payload.code, "forbidden");
        }
      },
    );

    await t.step("a key route never reads the key from Authorization", async () => {
      for (const authorization of [`Bearer ${KEY}`, KEY, `Basic ${btoa(`x:${KEY}`)}`]) {
        const { res } = await get(app, "/things", { authorization });
        assert.equal(res.status, 403);
      }
      const { res, json } = await get(app, "/things", { "x-api-key": KEY });
      assert.equal(res.status, 200);
      assert.equal(json.payload.person, null);
    });

    await t.step("a key_or_person route takes either, the key when x-api-key is sent", async () => {
      const byKey = await get(app, "/either", { "x-api-key": KEY });
      assert.equal(byKey.res.status, 200);
      assert.equal(byKey.json.payload.person, null);
      const byPerson = await get(app, "/either", { authorization: `Bearer ${token}` });
      assert.equal(byPerson.res.status, 200);
      assert.equal(byPerson.json.payload.person.id, "pat");
      const wrongKey = await get(app, "/either", {
        "x-api-key": "wrong-key-0123456789",
        authorization: `Bearer ${token}`,
      });
      assert.equal(wrongKey.res.status, 403, "a wrong key is not rescued by a valid token");
      const none = await get(app, "/either", {});
      assert.equal(none.res.status, 401);
    });

    await t.step(
      "public paths stay public; the OpenAPI document names the bearer scheme",
      async () => {
        const { res, json } = await get(app, "/openapi.json", {});
        assert.equal(res.status, 200);
        assert.deepEqual(json.components.securitySchemes.PersonToken, {
          type: "http",
          scheme: "bearer",
          bearerFormat: "JWT",
          description: "A person's OpenID Connect access token (OIDC_ISSUER_URL, OIDC_AUDIENCE)",
        });
        assert.equal((await get(app, "/health", {})).res.status, 200);
      },
    );
  });
});

Deno.test("requirePerson() answers 503 while the identity provider cannot be reached", async () => {
  await withServer(async (server, verifier) => {
    const { app } = anApp(verifier);
    server.jwksMode = "error";
    const { res, json } = await get(app, "/releases", {
      authorization: `Bearer ${await server.sign()}`,
    });
    assert.equal(res.status, 503);
    assert.equal(json.payload.code, "identity_provider_unavailable");
    assert.equal(res.headers.get("retry-after"), "5");
  });
});

Deno.test("createServiceApp() without people takes the key only, on every route", async () => {
  await withServer(async (server) => {
    const { app } = anApp(undefined);
    const token = await server.sign();
    for (const path of ["/releases", "/either", "/things"]) {
      assert.equal((await get(app, path, { authorization: `Bearer ${token}` })).res.status, 403);
      assert.equal((await get(app, path, { "x-api-key": KEY })).res.status, 200);
    }
  });
});

Deno.test("bearerTokenOf() reads only the Bearer scheme", async (t) => {
  const { app } = anApp(undefined);
  app.get("/token", (c) => c.json({ token: bearerTokenOf(c) ?? null }));
  const cases: [string | undefined, string | null][] = [
    ["Bearer abc.def.ghi", "abc.def.ghi"],
    ["bearer abc", "abc"],
    ["BEARER  abc ", "abc"],
    ["Bearer", null],
    ["Bearer a b", null],
    ["Basic abc", null],
    ["abc", null],
    [undefined, null],
  ];
  for (const [header, expected] of cases) {
    await t.step(`${JSON.stringify(header)} → ${JSON.stringify(expected)}`, async () => {
      const res = await app.request(`${URL_BASE}/token`, {
        headers: { "x-api-key": KEY, ...(header === undefined ? {} : { authorization: header }) },
      });
      assert.equal((await res.json()).token, expected);
    });
  }
});

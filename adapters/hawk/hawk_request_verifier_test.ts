import assert from "node:assert/strict";
import hawkModule from "hawk";
import { MemoryNonceStore } from "../memory/memory_nonce_store.ts";
import { NonceStoreFullError } from "../../ports/nonce_store.ts";
import {
  RequestNotAuthenticatedError,
  type SignedRequest,
} from "../../ports/signed_request_verifier.ts";
import { HAWK_SKEW_SECONDS, HawkRequestVerifier } from "./hawk_request_verifier.ts";

// deno-lint-ignore no-explicit-any
const hawk = hawkModule as any;

const KEY = "k".repeat(40);
const CREDENTIALS = { id: "pipeline-a", key: KEY, algorithm: "sha256" };
const URL_ = "http://gateway.test:8000/data/v1/releases?limit=2";

function verifier(maxEntries = 100) {
  const nonces = new MemoryNonceStore({ windowSeconds: HAWK_SKEW_SECONDS, maxEntries });
  return new HawkRequestVerifier({ keys: new Map([["pipeline-a", KEY]]), nonces });
}

function signed(
  options: Record<string, unknown> = {},
  overrides: Partial<SignedRequest> = {},
  credentials: Record<string, string> = CREDENTIALS,
): { request: SignedRequest; artifacts: unknown } {
  const { header, artifacts } = hawk.client.header(URL_, "GET", { credentials, ...options });
  return {
    request: {
      method: "GET",
      resource: "/data/v1/releases?limit=2",
      host: "gateway.test",
      port: 8000,
      authorization: header,
      contentType: "",
      hasBody: false,
      ...overrides,
    },
    artifacts,
  };
}

async function refusal(promise: Promise<unknown>): Promise<RequestNotAuthenticatedError> {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof RequestNotAuthenticatedError, String(e));
    return e;
  }
  assert.fail("the request was accepted");
}

Deno.test("HawkRequestVerifier.verify() accepts a signed request and signs its reply", async () => {
  const { request, artifacts } = signed();
  const verified = await verifier().verify(request, new Date());
  assert.equal(verified.clientId, "pipeline-a");
  const body = new TextEncoder().encode('{"status":"success","payload":{}}');
  const header = verified.replyAuthorization(body, "application/json");
  const checked = hawk.client.authenticate(
    {
      headers: { "server-authorization": header, "content-type": "application/json" },
    },
    CREDENTIALS,
    artifacts,
    { payload: new TextDecoder().decode(body), required: true },
  );
  assert.ok(checked.headers["server-authorization"]);
  assert.throws(() =>
    hawk.client.authenticate(
      { headers: { "server-authorization": header, "content-type": "application/json" } },
      CREDENTIALS,
      artifacts,
      { payload: '{"status":"success","payload":{"x":1}}' },
    )
  );
});

Deno.test("HawkRequestVerifier.verify() refuses an unknown client exactly as a wrong key", async () => {
  const v = verifier();
  const unknown = await refusal(
    v.verify(signed({}, {}, { ...CREDENTIALS, id: "nobody" }).request, new Date()),
  );
  const wrong = await refusal(
    v.verify(signed({}, {}, { ...CREDENTIALS, key: "x".repeat(40) }).request, new Date()),
  );
  assert.equal(unknown.reason, "unauthenticated");
  assert.deepEqual(
    [unknown.message, unknown.challenge, unknown.code],
    [wrong.message, wrong.challenge, wrong.code],
  );
});

Deno.test("HawkRequestVerifier.verify() refuses what the MAC does not cover as signed", async (t) => {
  const cases: [string, Partial<SignedRequest>][] = [
    ["another path", { resource: "/data/v1/releases?limit=3" }],
    ["another host", { host: "elsewhere.test" }],
    ["another port", { port: 443 }],
    ["another method", { method: "POST" }],
    ["no header", { authorization: undefined }],
    ["a bearer token", { authorization: "Bearer abc" }],
    ["a malformed header", { authorization: 'Hawk id="pipeline-a", mac=' }],
  ];
  for (const [name, overrides] of cases) {
    await t.step(name, async () => {
      const error = await refusal(verifier().verify(signed({}, overrides).request, new Date()));
      assert.equal(error.reason, "unauthenticated");
      assert.equal(error.challenge, "Hawk");
    });
  }
  await t.step("a SHA-1 MAC", async () => {
    const request = signed({}, {}, { ...CREDENTIALS, algorithm: "sha1" }).request;
    assert.equal((await refusal(verifier().verify(request, new Date()))).reason, "unauthenticated");
  });
});

Deno.test("HawkRequestVerifier.verify() refuses a replayed nonce", async () => {
  const v = verifier();
  const { request } = signed();
  await v.verify(request, new Date());
  assert.equal((await refusal(v.verify(request, new Date()))).reason, "replayed_nonce");
});

Deno.test("HawkRequestVerifier.verify() refuses a stale timestamp with the server's signed time", async () => {
  const v = verifier();
  for (const offset of [-(HAWK_SKEW_SECONDS + 5) * 1000, (HAWK_SKEW_SECONDS + 5) * 1000]) {
    const { request, artifacts } = signed({ localtimeOffsetMsec: offset });
    const error = await refusal(v.verify(request, new Date()));
    assert.equal(error.reason, "stale_timestamp");
    assert.match(error.challenge, /^Hawk ts="\d+", tsm="[^"]+"/);
    // The client can check the server's time came from the server.
    const checked = hawk.client.authenticate(
      { headers: { "www-authenticate": error.challenge } },
      CREDENTIALS,
      artifacts,
    );
    assert.ok(checked.headers["www-authenticate"].ts);
  }
  const within = signed({ localtimeOffsetMsec: -(HAWK_SKEW_SECONDS - 5) * 1000 });
  assert.equal((await v.verify(within.request, new Date())).clientId, "pipeline-a");
});

Deno.test("HawkRequestVerifier.verify() requires and checks the payload hash of a body", async () => {
  const v = verifier();
  const unhashed = signed({}, { hasBody: true, contentType: "application/json" }).request;
  assert.equal((await refusal(v.verify(unhashed, new Date()))).reason, "payload_hash_missing");
  const body = '{"a":1}';
  const hashed = signed({ payload: body, contentType: "application/json" }, {
    hasBody: true,
    contentType: "application/json",
  }).request;
  const verified = await v.verify(hashed, new Date());
  verified.checkBody(new TextEncoder().encode(body));
  assert.throws(
    () => verified.checkBody(new TextEncoder().encode('{"a":2}')),
    (e: unknown) =>
      e instanceof RequestNotAuthenticatedError && e.reason === "payload_hash_mismatch",
  );
});

Deno.test("HawkRequestVerifier.verify() passes on a full nonce store (nothing is served)", async () => {
  const v = verifier(1);
  await v.verify(signed().request, new Date());
  await assert.rejects(v.verify(signed().request, new Date()), NonceStoreFullError);
});

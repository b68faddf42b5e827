import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  IdentityProviderUnavailableError,
  PersonTokenRejectedError,
} from "../../ports/identity.ts";
import { startKeyServer } from "../../tests/support/identity_providers.ts";
import { OidcLogin } from "./oidc_login.ts";

const CLIENT = "dashboard";
const REDIRECT = "http://127.0.0.1:8000/ui/callback";

/** A key server plus a token endpoint answering with `reply` (and recording each request). */
async function anIssuer() {
  const keys = await startKeyServer();
  const requests: { headers: Headers; form: URLSearchParams }[] = [];
  const state = {
    reply: async (_form: URLSearchParams): Promise<Response> =>
      Response.json({ id_token: await keys.sign({ aud: CLIENT, nonce: "n" }) }),
  };
  const tokens = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    const form = new URLSearchParams(await request.text());
    requests.push({ headers: request.headers, form });
    return await state.reply(form);
  });
  keys.discoveryOverrides = {
    authorization_endpoint: `${keys.issuer}/auth`,
    token_endpoint: `http://127.0.0.1:${tokens.addr.port}/token`,
  };
  return {
    keys,
    requests,
    state,
    async [Symbol.asyncDispose]() {
      await tokens.shutdown();
      await keys[Symbol.asyncDispose]();
    },
  };
}

Deno.test("begin: an authorization URL with state, nonce and an S256 PKCE challenge", async () => {
  await using issuer = await anIssuer();
  const login = new OidcLogin({
    issuerUrl: issuer.keys.issuer,
    clientId: CLIENT,
    redirectUri: REDIRECT,
  });
  const { url, pending } = await login.begin();
  const params = new URL(url).searchParams;
  assert.ok(url.startsWith(`${issuer.keys.issuer}/auth?`));
  assert.equal(params.get("response_type"), "code");
  assert.equal(params.get("client_id"), CLIENT);
  assert.equal(params.get("redirect_uri"), REDIRECT);
  assert.equal(params.get("state"), pending.state);
  assert.equal(params.get("nonce"), pending.nonce);
  assert.equal(params.get("code_challenge_method"), "S256");
  assert.equal(
    params.get("code_challenge"),
    createHash("sha256").update(pending.codeVerifier).digest("base64url"),
  );
  assert.match(pending.state, /^[A-Za-z0-9_-]{43}$/);
  const again = await login.begin();
  assert.notEqual(again.pending.state, pending.state);
  assert.notEqual(again.pending.codeVerifier, pending.codeVerifier);
});

Deno.test("finish: a public client sends its id and the verifier, and gets the ID token's person", async () => {
  await using issuer = await anIssuer();
  const login = new OidcLogin({
    issuerUrl: issuer.keys.issuer,
    clientId: CLIENT,
    redirectUri: REDIRECT,
  });
  const person = await login.finish("the-code", { state: "s", nonce: "n", codeVerifier: "v" });
  assert.deepEqual(person, {
    id: "person-1",
    issuer: issuer.keys.issuer,
    name: "Pat Person",
    roles: ["ig-approver"],
  });
  const sent = issuer.requests[0];
  assert.ok(sent);
  assert.equal(sent.form.get("grant_type"), "authorization_code");
  assert.equal(sent.form.get("code"), "the-code");
  assert.equal(sent.form.get("code_verifier"), "v");
  assert.equal(sent.form.get("client_id"), CLIENT);
  assert.equal(sent.headers.get("authorization"), null);
});

Deno.test("finish: a confidential client authenticates with HTTP Basic", async () => {
  await using issuer = await anIssuer();
  const login = new OidcLogin({
    issuerUrl: issuer.keys.issuer,
    clientId: CLIENT,
    clientSecret: "s3cret",
    redirectUri: REDIRECT,
  });
  await login.finish("c", { state: "s", nonce: "n", codeVerifier: "v" });
  assert.equal(
    issuer.requests[0]?.headers.get("authorization"),
    `Basic ${btoa(`${CLIENT}:s3cret`)}`,
  );
  assert.equal(issuer.requests[0]?.form.get("client_id"), null);
});

Deno.test("finish: refuses another nonce, another audience, or no ID token", async () => {
  await using issuer = await anIssuer();
  const login = new OidcLogin({
    issuerUrl: issuer.keys.issuer,
    clientId: CLIENT,
    redirectUri: REDIRECT,
  });
  const pending = { state: "s", nonce: "expected", codeVerifier: "v" };
  await assert.rejects(login.finish("c", pending), PersonTokenRejectedError);

  issuer.state.reply = async () =>
    Response.json({
      id_token: await issuer.keys.sign({ aud: "another-client", nonce: "expected" }),
    });
  await assert.rejects(login.finish("c", pending), PersonTokenRejectedError);

  issuer.state.reply = () =>
    Promise.resolve(Response.json({ error: "invalid_grant" }, { status: 400 }));
  await assert.rejects(
    login.finish("c", pending),
    (e) => e instanceof PersonTokenRejectedError && /invalid_grant/.test(e.logDetail ?? ""),
  );

  issuer.state.reply = () => Promise.resolve(new Response("down", { status: 503 }));
  await assert.rejects(login.finish("c", pending), IdentityProviderUnavailableError);
});

Deno.test("a discovery document naming another issuer is refused", async () => {
  await using issuer = await anIssuer();
  issuer.keys.discoveryOverrides = { ...issuer.keys.discoveryOverrides, issuer: "https://evil" };
  const login = new OidcLogin({
    issuerUrl: issuer.keys.issuer,
    clientId: CLIENT,
    redirectUri: REDIRECT,
  });
  await assert.rejects(login.begin(), IdentityProviderUnavailableError);
});

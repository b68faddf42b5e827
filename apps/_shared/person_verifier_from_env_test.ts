import assert from "node:assert/strict";
import { startKeyServer, TEST_AUDIENCE } from "../../tests/support/identity_providers.ts";
import { ConfigError } from "./app_errors.ts";
import { personVerifierFromEnv } from "./person_verifier_from_env.ts";

Deno.test("personVerifierFromEnv() gives no verifier without OIDC_ISSUER_URL", () => {
  assert.equal(personVerifierFromEnv({}), undefined);
  assert.equal(personVerifierFromEnv({ OIDC_AUDIENCE: "a", OIDC_ROLES_CLAIM: "roles" }), undefined);
});

Deno.test("personVerifierFromEnv() refuses to start on a bad OIDC_* variable", async (t) => {
  const issuer = "https://keycloak.example.test/realms/lsc";
  const cases: [string, Record<string, string>, RegExp][] = [
    ["an issuer without an audience", { OIDC_ISSUER_URL: issuer }, /OIDC_AUDIENCE: must be set/],
    [
      "an empty audience",
      { OIDC_ISSUER_URL: issuer, OIDC_AUDIENCE: "" },
      /OIDC_AUDIENCE/,
    ],
    [
      "a plain-http issuer",
      { OIDC_ISSUER_URL: "http://keycloak.example.test/realms/lsc", OIDC_AUDIENCE: "a" },
      /OIDC_ISSUER_URL: must be an https URL/,
    ],
    [
      "an issuer that is not a URL",
      { OIDC_ISSUER_URL: "keycloak", OIDC_AUDIENCE: "a" },
      /OIDC_ISSUER_URL/,
    ],
    [
      "a roles path with an empty step",
      { OIDC_ISSUER_URL: issuer, OIDC_AUDIENCE: "a", OIDC_ROLES_CLAIM: "realm_access..roles" },
      /OIDC_ROLES_CLAIM/,
    ],
    [
      "a clock skew too large",
      { OIDC_ISSUER_URL: issuer, OIDC_AUDIENCE: "a", OIDC_CLOCK_SKEW_SECONDS: "3600" },
      /OIDC_CLOCK_SKEW_SECONDS/,
    ],
  ];
  for (const [name, env, message] of cases) {
    await t.step(name, () => {
      assert.throws(() => personVerifierFromEnv(env), (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        assert.match(e.message, message);
        return true;
      });
    });
  }
});

Deno.test("personVerifierFromEnv() configures the claims it reads", async () => {
  await using server = await startKeyServer();
  const verifier = personVerifierFromEnv({
    OIDC_ISSUER_URL: server.issuer,
    OIDC_AUDIENCE: TEST_AUDIENCE,
    OIDC_ROLES_CLAIM: "roles",
    OIDC_ID_CLAIM: "oid",
    OIDC_NAME_CLAIMS: " name , email ",
    OIDC_CLOCK_SKEW_SECONDS: "0",
  });
  assert.ok(verifier !== undefined);
  const person = await verifier.verify(
    await server.sign({ oid: "o-1", roles: ["r"], email: "pat@example.test" }),
  );
  assert.deepEqual({ ...person, roles: [...person.roles] }, {
    id: "o-1",
    issuer: server.issuer,
    name: "pat@example.test",
    roles: ["r"],
  });
  // No clock skew: a token that expired a second ago is refused.
  await assert.rejects(
    verifier.verify(
      await server.sign({ oid: "o-1", roles: ["r"], exp: Math.floor(Date.now() / 1000) - 2 }),
    ),
    { code: "invalid_token" },
  );
});

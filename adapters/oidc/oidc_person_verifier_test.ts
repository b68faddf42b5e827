import assert from "node:assert/strict";
import { exportSPKI, SignJWT, UnsecuredJWT } from "jose";
import {
  IdentityProviderUnavailableError,
  PersonTokenRejectedError,
} from "../../ports/identity.ts";
import {
  aSigningKey,
  type KeyServer,
  startKeyServer,
  startOidcProvider,
  TEST_AUDIENCE,
} from "../../tests/support/identity_providers.ts";
import {
  JWKS_MAX_STALE_MS,
  JWKS_REFRESH_AFTER_MS,
  OidcPersonVerifier,
  type OidcSettings,
  RETRY_AFTER_FAILURE_MS,
} from "./oidc_person_verifier.ts";

/** A clock the test moves by hand. */
function aClock(start = Date.now()) {
  const clock = { ms: start, now: () => clock.ms };
  return clock;
}

function aVerifier(
  server: KeyServer,
  settings: Partial<OidcSettings> = {},
): OidcPersonVerifier {
  return new OidcPersonVerifier({ issuerUrl: server.issuer, audience: TEST_AUDIENCE, ...settings });
}

/** Asserts `verify` refuses the token with a reason matching `reason`, never echoing the token. */
async function assertRejected(
  verifier: OidcPersonVerifier,
  token: string,
  reason: RegExp,
): Promise<void> {
  await assert.rejects(verifier.verify(token), (e: unknown) => {
    assert.ok(e instanceof PersonTokenRejectedError, `not a rejection: ${e}`);
    assert.equal(e.code, "invalid_token");
    assert.match(e.logDetail ?? "", reason);
    if (token.length > 20) {
      assert.ok(!e.message.includes(token) && !(e.logDetail ?? "").includes(token));
      const signature = token.split(".")[2] ?? "";
      if (signature.length > 10) assert.ok(!(e.logDetail ?? "").includes(signature));
    }
    return true;
  });
}

async function assertUnavailable(
  verifier: OidcPersonVerifier,
  token: string,
  reason: RegExp,
): Promise<void> {
  await assert.rejects(verifier.verify(token), (e: unknown) => {
    assert.ok(e instanceof IdentityProviderUnavailableError, `not unavailable: ${e}`);
    assert.equal(e.code, "identity_provider_unavailable");
    assert.match(e.logDetail ?? "", reason);
    return true;
  });
}

/** base64url of a JSON value. */
function part(value: unknown): string {
  return btoa(JSON.stringify(value)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

Deno.test("OidcPersonVerifier against oidc-provider's access tokens", async (t) => {
  await using idp = await startOidcProvider({
    "alice": ["ig-approver", "data-engineer"],
    "bob": [],
  });

  await t.step("verify() reads the person from a client-credentials access token", async () => {
    const verifier = new OidcPersonVerifier({ issuerUrl: idp.issuer, audience: TEST_AUDIENCE });
    const person = await verifier.verify(await idp.accessToken("alice"));
    assert.deepEqual({ ...person, roles: [...person.roles] }, {
      id: "alice",
      issuer: idp.issuer,
      name: "alice",
      roles: ["ig-approver", "data-engineer"],
    });
    const bob = await verifier.verify(await idp.accessToken("bob"));
    assert.deepEqual([...bob.roles], []);
  });

  await t.step("verify() refuses the provider's token for another audience", async () => {
    const verifier = new OidcPersonVerifier({
      issuerUrl: idp.issuer,
      audience: "https://another-api.test",
    });
    await assertRejected(verifier, await idp.accessToken("alice"), /claim "aud"/);
  });

  await t.step(
    "verify() refuses the provider's token when the issuer is spelt differently",
    async () => {
      const verifier = new OidcPersonVerifier({
        issuerUrl: idp.issuer + "/",
        audience: TEST_AUDIENCE,
      });
      await assertUnavailable(verifier, await idp.accessToken("alice"), /names issuer/);
    },
  );
});

Deno.test("OidcPersonVerifier token checks", async (t) => {
  await using server = await startKeyServer();
  const verifier = aVerifier(server);

  await t.step("verify() accepts a valid RS256 token", async () => {
    const person = await verifier.verify(await server.sign());
    assert.deepEqual({ ...person, roles: [...person.roles] }, {
      id: "person-1",
      issuer: server.issuer,
      name: "Pat Person",
      roles: ["ig-approver"],
    });
  });

  for (const alg of ["PS256", "ES256", "ES384", "EdDSA"]) {
    await t.step(`verify() accepts a valid ${alg} token`, async () => {
      const key = await aSigningKey(`key-${alg}`, alg);
      server.keys = [...server.keys, key];
      const local = aVerifier(server);
      assert.equal((await local.verify(await server.sign({}, { key }))).id, "person-1");
    });
  }

  await t.step("verify() refuses alg none", async () => {
    const unsecured = new UnsecuredJWT({
      iss: server.issuer,
      aud: TEST_AUDIENCE,
      sub: "mallory",
      exp: Math.floor(Date.now() / 1000) + 300,
      realm_access: { roles: ["ig-approver"] },
    }).encode();
    await assertRejected(verifier, unsecured, /algorithm "none" is not accepted/);
    // The same with a kid and an empty signature, and with the algorithm spelt otherwise.
    const payload = part({ iss: server.issuer, aud: TEST_AUDIENCE, sub: "m", exp: 9e9 });
    for (const alg of ["none", "None", "NONE"]) {
      await assertRejected(
        verifier,
        `${part({ alg, kid: "k1" })}.${payload}.`,
        /is not accepted/,
      );
    }
  });

  await t.step(
    "verify() refuses HS256 signed with the issuer's public key (key confusion)",
    async () => {
      const key = server.keys[0]!;
      const fetchesBefore = server.fetches.jwks;
      const claims = {
        iss: server.issuer,
        aud: TEST_AUDIENCE,
        sub: "mallory",
        exp: Math.floor(Date.now() / 1000) + 300,
        realm_access: { roles: ["ig-approver"] },
      };
      const pem = await exportSPKI(
        await crypto.subtle.importKey(
          "jwk",
          key.publicJwk as JsonWebKey,
          { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
          true,
          ["verify"],
        ),
      );
      for (
        const secret of [
          new TextEncoder().encode(pem),
          new TextEncoder().encode(JSON.stringify(key.publicJwk)),
        ]
      ) {
        for (const alg of ["HS256", "HS512"]) {
          const forged = await new SignJWT(claims).setProtectedHeader({ alg, kid: key.kid })
            .sign(secret);
          await assertRejected(verifier, forged, new RegExp(`algorithm "${alg}" is not accepted`));
        }
      }
      assert.equal(server.fetches.jwks, fetchesBefore, "a forged token never makes it fetch keys");
    },
  );

  await t.step("verify() refuses an expired token, beyond the clock skew", async () => {
    const now = Date.now();
    await assertRejected(
      verifier,
      await server.sign({ iat: Math.floor(now / 1000) - 600, exp: Math.floor(now / 1000) - 60 }),
      /token expired/,
    );
    const withinSkew = await server.sign({ exp: Math.floor(now / 1000) - 10 });
    assert.equal((await verifier.verify(withinSkew)).id, "person-1");
  });

  await t.step("verify() refuses a token without exp", async () => {
    await assertRejected(verifier, await server.sign({ exp: undefined }), /claim "exp"/);
  });

  await t.step("verify() refuses a token not yet valid, beyond the clock skew", async () => {
    const now = Math.floor(Date.now() / 1000);
    await assertRejected(verifier, await server.sign({ nbf: now + 120 }), /claim "nbf"/);
    assert.equal((await verifier.verify(await server.sign({ nbf: now + 10 }))).id, "person-1");
  });

  await t.step("verify() refuses a wrong issuer", async () => {
    for (const iss of ["https://evil.test/realms/test", server.issuer + "/", undefined]) {
      await assertRejected(verifier, await server.sign({ iss }), /claim "iss"/);
    }
  });

  await t.step("verify() refuses a wrong audience", async () => {
    for (const aud of ["https://another.test", ["https://another.test", "x"], undefined]) {
      await assertRejected(verifier, await server.sign({ aud }), /claim "aud"/);
    }
    // One of several audiences is enough.
    const person = await verifier.verify(await server.sign({ aud: ["x", TEST_AUDIENCE] }));
    assert.equal(person.id, "person-1");
  });

  await t.step("verify() refuses a signature by a key the issuer does not publish", async () => {
    const stranger = await aSigningKey("k1");
    await assertRejected(
      verifier,
      await server.sign({}, { key: stranger }),
      /signature does not verify/,
    );
    const unknown = await aSigningKey("unknown-kid");
    await assertRejected(verifier, await server.sign({}, { key: unknown }), /kid "unknown-kid"/);
  });

  await t.step("verify() refuses a tampered payload", async () => {
    const [header, , signature] = (await server.sign()).split(".");
    const payload = part({
      iss: server.issuer,
      aud: TEST_AUDIENCE,
      sub: "someone-else",
      exp: 9e9,
      realm_access: { roles: ["ig-approver"] },
    });
    await assertRejected(verifier, `${header}.${payload}.${signature}`, /signature/);
  });

  await t.step("verify() refuses what is not a compact JWS", async () => {
    for (const token of ["", "abc", "a.b.c", "a.b.c.d.e", "x".repeat(20_000)]) {
      await assertRejected(verifier, token, /compact JWS|longer than/);
    }
  });

  await t.step("verify() refuses a missing roles claim or one of the wrong type", async () => {
    const cases: [string, Record<string, unknown>, RegExp][] = [
      ["missing", { realm_access: undefined }, /"realm_access.roles" is missing/],
      ["missing inside", { realm_access: {} }, /"realm_access.roles" is missing/],
      ["parent not an object", { realm_access: "x" }, /is missing/],
      ["a string", { realm_access: { roles: "ig-approver" } }, /not an array of strings/],
      ["an array with a number", { realm_access: { roles: ["a", 1] } }, /not an array of strings/],
      ["an object", { realm_access: { roles: { a: 1 } } }, /not an array of strings/],
      ["null", { realm_access: { roles: null } }, /not an array of strings/],
    ];
    for (const [, claims, reason] of cases) {
      await assertRejected(verifier, await server.sign(claims), reason);
    }
  });

  await t.step("verify() refuses a missing or empty id claim", async () => {
    await assertRejected(verifier, await server.sign({ sub: undefined }), /"sub" is missing/);
    await assertRejected(verifier, await server.sign({ sub: "" }), /not a non-empty string/);
    await assertRejected(
      verifier,
      await server.sign({ sub: 42 }).catch(() => "unsignable"),
      /not a non-empty string|compact JWS/,
    );
  });

  await t.step("verify() names a person by the first name claim present, else the id", async () => {
    const byEmail = await verifier.verify(
      await server.sign({ preferred_username: undefined, email: "pat@example.test" }),
    );
    assert.equal(byEmail.name, "pat@example.test");
    const byId = await verifier.verify(await server.sign({ preferred_username: "" }));
    assert.equal(byId.name, "person-1");
  });

  await t.step("verify() removes duplicate roles", async () => {
    const person = await verifier.verify(
      await server.sign({ realm_access: { roles: ["a", "b", "a"] } }),
    );
    assert.deepEqual([...person.roles], ["a", "b"]);
  });

  await t.step("verify() reads other claims when configured (Entra ID style)", async () => {
    const entra = aVerifier(server, {
      idClaim: "oid",
      rolesClaim: "roles",
      nameClaims: ["name", "upn"],
    });
    const person = await entra.verify(
      await server.sign({ oid: "0000-1111", roles: ["data-engineer"], upn: "pat@org.test" }),
    );
    assert.deepEqual({ ...person, roles: [...person.roles] }, {
      id: "0000-1111",
      issuer: server.issuer,
      name: "pat@org.test",
      roles: ["data-engineer"],
    });
    await assertRejected(entra, await server.sign({ roles: ["x"] }), /"oid" is missing/);
    const deep = aVerifier(server, { rolesClaim: "resource_access.publisher.roles" });
    const client = await deep.verify(
      await server.sign({ resource_access: { publisher: { roles: ["output-checker"] } } }),
    );
    assert.deepEqual([...client.roles], ["output-checker"]);
  });
});

Deno.test("OidcPersonVerifier keys: rotation, rate limit and caching", async (t) => {
  await t.step("verify() fetches discovery and JWKS once for concurrent first tokens", async () => {
    await using server = await startKeyServer();
    const verifier = aVerifier(server);
    const tokens = await Promise.all(
      Array.from({ length: 8 }, (_, i) => server.sign({ sub: `p${i}` })),
    );
    const people = await Promise.all(tokens.map((token) => verifier.verify(token)));
    assert.deepEqual(people.map((p) => p.id), tokens.map((_, i) => `p${i}`));
    assert.deepEqual(server.fetches, { discovery: 1, jwks: 1 });
  });

  await t.step("a key rotated in at the issuer is fetched, at most once per 30 s", async () => {
    await using server = await startKeyServer();
    const clock = aClock();
    const verifier = aVerifier(server, { now: clock.now });
    await verifier.verify(await server.sign({}, { now: clock.ms }));
    assert.deepEqual(server.fetches, { discovery: 1, jwks: 1 });

    // The issuer rotates: k2 appears, and a token signed with it arrives 10 s after the last fetch.
    const k2 = await aSigningKey("k2");
    server.keys = [k2, ...server.keys];
    clock.ms += 10_000;
    const rotated = await server.sign({}, { key: k2, now: clock.ms });
    await assertRejected(verifier, rotated, /kid "k2".*not fetched again yet/);
    assert.equal(server.fetches.jwks, 1, "no fetch within 30 s of the last");

    clock.ms += 21_000;
    assert.equal((await verifier.verify(rotated)).id, "person-1");
    assert.equal(server.fetches.jwks, 2, "the unknown kid made it fetch the JWKS again");
    assert.equal(server.fetches.discovery, 1, "discovery is not fetched again");

    // A flood of made-up key ids costs the issuer nothing more within the next 30 s.
    for (let i = 0; i < 20; i++) {
      clock.ms += 1_000;
      const made = await aSigningKey(`made-up-${i}`, "ES256");
      await assertRejected(verifier, await server.sign({}, { key: made, now: clock.ms }), /kid/);
    }
    assert.equal(server.fetches.jwks, 2);
    clock.ms += 10_000;
    const late = await aSigningKey("late");
    await assertRejected(verifier, await server.sign({}, { key: late, now: clock.ms }), /late/);
    assert.equal(server.fetches.jwks, 3, "30 s later, one fetch again");

    // The old key was withdrawn: once the JWKS is fetched again, its tokens stop working.
    server.keys = [k2];
    clock.ms += JWKS_REFRESH_AFTER_MS;
    await assertRejected(
      verifier,
      await server.sign({}, { key: await aSigningKey("k1"), now: clock.ms }),
      /kid "k1"|signature/,
    );
    assert.equal(server.fetches.jwks, 4, "a JWKS older than 10 min is fetched again");
  });

  await t.step(
    "the JWKS endpoint down with nothing cached: fail closed, then recover",
    async () => {
      await using server = await startKeyServer();
      const clock = aClock();
      const verifier = aVerifier(server, { now: clock.now });
      const token = await server.sign({}, { now: clock.ms });
      server.jwksMode = "error";
      await assertUnavailable(verifier, token, /JWKS.*HTTP 503/);
      // Within 5 s of a failure it does not even try.
      await assertUnavailable(verifier, token, /last fetch failed/);
      assert.equal(server.fetches.jwks, 1);
      server.jwksMode = "up";
      clock.ms += RETRY_AFTER_FAILURE_MS;
      assert.equal((await verifier.verify(token)).id, "person-1");
    },
  );

  await t.step("discovery down, slow, huge or wrong: fail closed", async () => {
    for (
      const [mode, reason] of [
        ["error", /discovery document.*HTTP 503/],
        ["hang", /discovery document.*did not answer within 0.2 s/],
        ["huge", /discovery document.*more than/],
      ] as const
    ) {
      await using server = await startKeyServer();
      server.discoveryMode = mode;
      const verifier = aVerifier(server, { fetchTimeoutMs: 200 });
      await assertUnavailable(verifier, await server.sign(), reason);
    }
    for (
      const [overrides, reason] of [
        [{ issuer: "https://other.test" }, /names issuer "https:\/\/other.test"/],
        [{ jwks_uri: "http://keys.example.test/certs" }, /neither https nor loopback/],
        [{ jwks_uri: undefined }, /no valid jwks_uri/],
      ] as const
    ) {
      await using server = await startKeyServer();
      server.discoveryOverrides = overrides;
      await assertUnavailable(aVerifier(server), await server.sign(), reason);
    }
  });

  await t.step("the JWKS slow or huge: fail closed", async () => {
    for (const [mode, reason] of [["hang", /did not answer/], ["huge", /more than/]] as const) {
      await using server = await startKeyServer();
      server.jwksMode = mode;
      const verifier = aVerifier(server, { fetchTimeoutMs: 200 });
      await assertUnavailable(verifier, await server.sign(), reason);
    }
  });

  await t.step(
    "a cached JWKS keeps working while the issuer is down, for at most 1 h",
    async () => {
      await using server = await startKeyServer();
      const clock = aClock();
      const verifier = aVerifier(server, { now: clock.now });
      await verifier.verify(await server.sign({}, { now: clock.ms }));
      server.discoveryMode = "error";
      server.jwksMode = "error";
      clock.ms += JWKS_REFRESH_AFTER_MS + 1_000;
      assert.equal(
        (await verifier.verify(await server.sign({}, { now: clock.ms }))).id,
        "person-1",
      );
      assert.equal(server.fetches.jwks, 2, "it tried to refresh the stale JWKS");
      // An unknown kid cannot be looked up while the issuer is down.
      const k2 = await aSigningKey("k2");
      clock.ms += 30_000;
      await assertUnavailable(
        verifier,
        await server.sign({}, { key: k2, now: clock.ms }),
        /no cached key matches kid "k2"/,
      );
      clock.ms = clock.ms - JWKS_REFRESH_AFTER_MS - 31_000 + JWKS_MAX_STALE_MS;
      await assertUnavailable(verifier, await server.sign({}, { now: clock.ms }), /JWKS|failed/);
    },
  );
});

Deno.test("OidcPersonVerifier refuses an issuer neither https nor loopback", () => {
  for (const issuerUrl of ["http://keycloak.example.test/realms/x", "ftp://x.test", "not a url"]) {
    assert.throws(() => new OidcPersonVerifier({ issuerUrl, audience: "a" }), TypeError);
  }
  for (const issuerUrl of ["https://keycloak.example.test/realms/x", "http://localhost:8080/x"]) {
    assert.ok(new OidcPersonVerifier({ issuerUrl, audience: "a" }));
  }
});

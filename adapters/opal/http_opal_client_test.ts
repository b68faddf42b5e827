import assert from "node:assert/strict";
import https from "node:https";
import { generateOpalPassword, opalGroupName } from "../../domain/opal.ts";
import {
  OpalAuthenticationError,
  OpalProtocolError,
  OpalRejectedError,
  OpalUnavailableError,
} from "../../ports/opal_client.ts";
import {
  contractResources,
  opalClientContract,
  type OpalContractFixture,
  type OpalContractNames,
  type OpalProbe,
  type ProbedResource,
} from "../../tests/contracts/opal_client_contract.ts";
import {
  FAKE_OPAL_VERSION,
  FakeOpal,
  type FakeOpalOptions,
} from "../../tests/support/fake_opal.ts";
import { HttpOpalClient, type HttpOpalClientOptions } from "./http_opal_client.ts";

// -----------------------------------------------------------------------------------------------------------
// Fixtures

/** A probe that reads and seeds the fake's state in process. */
function fakeProbe(fake: FakeOpal): OpalProbe {
  return {
    computesResourceUrls: true,
    project: (name) => {
      const p = fake.state.projects[name];
      return Promise.resolve(
        p === undefined
          ? undefined
          : p.description === undefined
          ? { title: p.title }
          : { title: p.title, description: p.description },
      );
    },
    user: (name) => {
      const u = fake.state.users[name];
      return Promise.resolve(
        u === undefined
          ? undefined
          : { authenticationType: u.authenticationType, groups: u.groups, enabled: u.enabled },
      );
    },
    groupMembers: (name) => Promise.resolve(fake.state.groups[name]),
    datashieldGrants: (group) =>
      Promise.resolve(
        fake.state.acls
          .filter((a) => a.node === "/datashield" && a.type === "GROUP" && a.principal === group)
          .map((a) => a.permission),
      ),
    resourcesGrants: (project, group) =>
      Promise.resolve(
        fake.state.acls
          .filter((a) =>
            a.node === `/project/${project}/resources` && a.type === "GROUP" &&
            a.principal === group
          )
          .map((a) => a.permission),
      ),
    resource: (project, name) => {
      const r = fake.state.resources[project]?.[name];
      if (r === undefined) return Promise.resolve(undefined);
      const probed: { -readonly [K in keyof ProbedResource]: ProbedResource[K] } = {
        provider: r.provider,
        factory: r.factory,
        parameters: r.parameters,
        created: r.created,
      };
      if (r.description !== undefined) probed.description = r.description;
      if (r.credentials !== undefined) probed.credentials = r.credentials;
      const url = fake.computedResourceUrl(project, name);
      if (url !== undefined) probed.url = url;
      return Promise.resolve(probed);
    },
    resourceNames: (project) => Promise.resolve(Object.keys(fake.state.resources[project] ?? {})),
    seedProject: (name, fields) => Promise.resolve(fake.seed({ projects: { [name]: fields } })),
    seedUser: (name, fields) => Promise.resolve(fake.seed({ users: { [name]: fields } })),
    seedGroup: (name) => Promise.resolve(fake.seed({ groups: [name] })),
    seedDatashieldGrant: (group, permission) =>
      Promise.resolve(
        fake.seed({ acls: [{ node: "/datashield", principal: group, type: "GROUP", permission }] }),
      ),
    seedResourcesGrant: (project, group, permission) =>
      Promise.resolve(fake.seed({
        acls: [{
          node: `/project/${project}/resources`,
          principal: group,
          type: "GROUP",
          permission,
        }],
      })),
    userPassword: (name) => Promise.resolve(fake.state.users[name]?.password),
    requests: () => fake.requests,
    clearRequests: () => fake.clearRequests(),
  };
}

/** A fresh fake and an admin client on it. */
async function fakeFixture(
  fakeOptions: FakeOpalOptions = {},
  clientOptions: Partial<HttpOpalClientOptions> = {},
): Promise<OpalContractFixture & { fake: FakeOpal }> {
  const fake = await FakeOpal.start(fakeOptions);
  const client = new HttpOpalClient({
    baseUrl: fake.url,
    username: fake.admin.username,
    password: fake.admin.password,
    timeoutMs: 5_000,
    ...clientOptions,
  });
  return {
    fake,
    client,
    probe: fakeProbe(fake),
    username: fake.admin.username,
    password: fake.admin.password,
    [Symbol.asyncDispose]: () => fake[Symbol.asyncDispose](),
  };
}

/** A self-signed certificate for 127.0.0.1, made with openssl; `undefined` when openssl is missing. */
async function selfSignedCertificate(): Promise<{ cert: string; key: string } | undefined> {
  const dir = await Deno.makeTempDir({ prefix: "fake_opal_tls_" });
  try {
    const output = await new Deno.Command("openssl", {
      args: [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        `${dir}/key.pem`,
        "-out",
        `${dir}/cert.pem`,
        "-days",
        "2",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=DNS:localhost,IP:127.0.0.1",
      ],
      stdout: "null",
      stderr: "null",
    }).output();
    if (!output.success) return undefined;
    return {
      cert: await Deno.readTextFile(`${dir}/cert.pem`),
      key: await Deno.readTextFile(`${dir}/key.pem`),
    };
  } catch {
    return undefined;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const TLS = await selfSignedCertificate();
const NO_OPENSSL = "(needs openssl; skipped without it)";

function basicToken(username: string, password: string): string {
  return btoa(`${username}:${password}`);
}

/** Asserts that nothing about `error` (message, stack, causes) reveals one of `secrets`. */
function assertNoSecrets(error: unknown, secrets: readonly string[]): void {
  let current: unknown = error;
  while (current instanceof Error) {
    for (const secret of secrets) {
      assert.ok(!current.message.includes(secret), `message reveals a secret: ${current.message}`);
      assert.ok(!(current.stack ?? "").includes(secret), "stack reveals a secret");
    }
    current = current.cause;
  }
}

// -----------------------------------------------------------------------------------------------------------
// The contract

Deno.test("HttpOpalClient passes the OpalClient contract against the fake OPAL", async (t) => {
  await opalClientContract(t, () => fakeFixture());
});

Deno.test({
  name: `HttpOpalClient with noSslVerify passes the OpalClient contract over HTTPS ${NO_OPENSSL}`,
  ignore: TLS === undefined,
  fn: async (t) => {
    await opalClientContract(t, () => fakeFixture({ tls: TLS }, { noSslVerify: true }));
  },
});

// -----------------------------------------------------------------------------------------------------------
// Live OPAL (opt-in)

const LIVE = {
  url: Deno.env.get("OPAL_TEST_URL"),
  username: Deno.env.get("OPAL_TEST_USERNAME"),
  password: Deno.env.get("OPAL_TEST_PASSWORD"),
  noSslVerify: Deno.env.get("OPAL_TEST_NO_SSL_VERIFY")?.toLowerCase() === "true",
};

/** Raw admin calls to a live OPAL, for the probe and for cleanup. */
function liveRequest(
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: unknown }> {
  const url = new URL(`${(LIVE.url ?? "").replace(/\/+$/, "")}/ws${path}`);
  const headers: Record<string, string> = {
    accept: "application/json",
    authorization: `Basic ${basicToken(LIVE.username ?? "", LIVE.password ?? "")}`,
  };
  const text = body === undefined ? undefined : JSON.stringify(body);
  if (text !== undefined) headers["content-type"] = "application/json";
  const parse = (status: number, raw: string) => {
    let json: unknown = undefined;
    try {
      json = raw === "" ? undefined : JSON.parse(raw);
    } catch {
      json = raw;
    }
    return { status, json };
  };
  if (LIVE.noSslVerify && url.protocol === "https:") {
    return new Promise((resolve, reject) => {
      const request = https.request(url, { method, headers, rejectUnauthorized: false }, (res) => {
        let raw = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => raw += chunk);
        res.on("end", () => resolve(parse(res.statusCode ?? 0, raw)));
        res.on("error", reject);
      });
      request.on("error", reject);
      if (text !== undefined) request.write(text);
      request.end();
    });
  }
  return fetch(url, { method, headers, ...(text === undefined ? {} : { body: text }) })
    .then(async (res) => parse(res.status, await res.text()));
}

function segment(name: string): string {
  return encodeURIComponent(name);
}

async function liveGrants(path: string, group: string): Promise<string[]> {
  const { status, json } = await liveRequest("GET", `${path}?type=GROUP`);
  if (status !== 200) return [];
  const acls = json as { subject: { principal: string; type: string }; actions?: string[] }[];
  return acls.find((a) => a.subject.type === "GROUP" && a.subject.principal === group)?.actions ??
    [];
}

/** A probe on a live OPAL, through its REST API with the test credentials. */
const liveProbe: OpalProbe = {
  computesResourceUrls: false,
  async project(name) {
    const { status, json } = await liveRequest("GET", `/project/${segment(name)}`);
    if (status !== 200) return undefined;
    const p = json as { title: string; description?: string };
    return p.description === undefined
      ? { title: p.title }
      : { title: p.title, description: p.description };
  },
  async user(name) {
    const { status, json } = await liveRequest(
      "GET",
      `/system/subject-credential/${segment(name)}`,
    );
    if (status !== 200) return undefined;
    const u = json as { authenticationType: string; groups?: string[]; enabled?: boolean };
    return {
      authenticationType: u.authenticationType,
      groups: u.groups ?? [],
      enabled: u.enabled ?? true,
    };
  },
  async groupMembers(name) {
    const { status, json } = await liveRequest("GET", `/system/group/${segment(name)}`);
    if (status !== 200) return undefined;
    return [...((json as { subjectCredentials?: string[] }).subjectCredentials ?? [])].sort();
  },
  datashieldGrants: (group) => liveGrants("/system/permissions/datashield", group),
  resourcesGrants: (project, group) =>
    liveGrants(`/project/${segment(project)}/permissions/resources`, group),
  async resource(project, name) {
    const { status, json } = await liveRequest(
      "GET",
      `/project/${segment(project)}/resource/${segment(name)}`,
    );
    if (status !== 200) return undefined;
    const r = json as ProbedResource & { resource?: { url?: string } };
    const probed: { -readonly [K in keyof ProbedResource]: ProbedResource[K] } = {
      provider: r.provider,
      factory: r.factory,
      parameters: r.parameters,
    };
    if (r.description !== undefined) probed.description = r.description;
    if (r.credentials !== undefined) probed.credentials = r.credentials;
    if (r.created !== undefined) probed.created = r.created;
    if (r.resource?.url !== undefined) probed.url = r.resource.url;
    return probed;
  },
  async resourceNames(project) {
    const { status, json } = await liveRequest("GET", `/project/${segment(project)}/resources`);
    return status === 200 ? (json as { name: string }[]).map((r) => r.name).sort() : [];
  },
  async seedProject(name, fields) {
    await liveRequest("POST", "/projects", { name, ...fields });
  },
  async seedUser(name, fields) {
    await liveRequest("POST", "/system/subject-credentials", {
      name,
      authenticationType: "PASSWORD",
      ...fields,
    });
  },
  async seedGroup(name) {
    await liveRequest("POST", "/system/groups", { name });
  },
  async seedDatashieldGrant(group, permission) {
    await liveRequest(
      "POST",
      `/system/permissions/datashield?type=GROUP&permission=${permission}&principal=${
        segment(group)
      }`,
    );
  },
  async seedResourcesGrant(project, group, permission) {
    await liveRequest(
      "POST",
      `/project/${
        segment(project)
      }/permissions/resources?type=GROUP&permission=${permission}&principal=${segment(group)}`,
    );
  },
};

/** Removes everything a contract step may have created on the live OPAL. */
async function liveCleanup(names: OpalContractNames): Promise<void> {
  await liveRequest("DELETE", `/project/${segment(names.project)}/resources`);
  await liveRequest("DELETE", `/project/${segment(names.project)}`);
  await liveRequest("DELETE", `/system/subject-credential/${segment(names.user)}`);
  for (const group of [names.group, names.otherGroup]) {
    await liveRequest(
      "DELETE",
      `/system/permissions/datashield?type=GROUP&principal=${segment(group)}`,
    );
    await liveRequest("DELETE", `/system/group/${segment(group)}`);
  }
}

Deno.test({
  name: "HttpOpalClient passes the OpalClient contract against a live OPAL " +
    "(set OPAL_TEST_URL, OPAL_TEST_USERNAME, OPAL_TEST_PASSWORD, optionally OPAL_TEST_NO_SSL_VERIFY; " +
    "skipped otherwise)",
  ignore: LIVE.url === undefined || LIVE.username === undefined || LIVE.password === undefined,
  fn: async (t) => {
    await opalClientContract(t, (names) => {
      const client = new HttpOpalClient({
        baseUrl: LIVE.url ?? "",
        username: LIVE.username ?? "",
        password: LIVE.password ?? "",
        noSslVerify: LIVE.noSslVerify,
      });
      return Promise.resolve({
        client,
        probe: liveProbe,
        username: LIVE.username ?? "",
        password: LIVE.password ?? "",
        [Symbol.asyncDispose]: () => liveCleanup(names),
      });
    });
  },
});

// -----------------------------------------------------------------------------------------------------------
// Adapter-specific behaviour

Deno.test("HttpOpalClient.checkReady() reports OPAL's version", async () => {
  await using fixture = await fakeFixture();
  assert.deepEqual(await fixture.client.checkReady(), {
    principal: "administrator",
    opalVersion: FAKE_OPAL_VERSION,
  });
});

Deno.test("HttpOpalClient maps a 401 to OpalAuthenticationError after one request, never retried", async (t) => {
  const password = "Wr0ng#Password-value";
  const calls: [string, (client: HttpOpalClient) => Promise<unknown>][] = [
    ["checkReady", (c) => c.checkReady()],
    ["ensureProject", (c) => c.ensureProject("p")],
    ["ensureUserInGroup", (c) => c.ensureUserInGroup("u", "g", generateOpalPassword())],
    ["ensureDatashieldUse", (c) => c.ensureDatashieldUse("g")],
    ["ensureResource", (c) => c.ensureResource(contractResources("p")[0]!)],
    ["ensureResourcesView", (c) => c.ensureResourcesView("p", "g")],
    ["listResources", (c) => c.listResources("p")],
  ];
  for (const [name, call] of calls) {
    await t.step(name, async () => {
      await using fixture = await fakeFixture({}, { password });

      const error = await call(fixture.client as HttpOpalClient).catch((e: unknown) => e);

      assert.ok(error instanceof OpalAuthenticationError, String(error));
      assert.equal(error.status, 401);
      assert.equal(error.code, "opal_authentication_failed");
      assert.match(error.message, /refused the credentials of user "administrator"/);
      assert.equal(fixture.fake.requests.length, 1);
      assertNoSecrets(error, [password, basicToken("administrator", password)]);
    });
  }
});

Deno.test("HttpOpalClient maps a 403 of a non-admin user to OpalAuthenticationError", async () => {
  await using fake = await FakeOpal.start();
  fake.seed({ users: { analyst: { password: "An4lyst#pass" } } });
  const client = new HttpOpalClient({
    baseUrl: fake.url,
    username: "analyst",
    password: "An4lyst#pass",
  });
  assert.equal((await client.checkReady()).principal, "analyst");

  const error = await client.ensureProject("p").catch((e: unknown) => e);

  assert.ok(error instanceof OpalAuthenticationError, String(error));
  assert.equal(error.status, 403);
  assert.match(error.message, /user "analyst" lacks the permission/);
  assert.deepEqual(fake.state.projects, {});
});

Deno.test("HttpOpalClient maps a 500 to OpalUnavailableError naming the request, not retried", async () => {
  await using fixture = await fakeFixture();
  const { client, fake } = fixture;
  await client.ensureProject("p");
  fake.failNext({ method: "POST", path: /\/resources$/, status: 500 });
  const [definition] = contractResources("p");

  const error = await client.ensureResource(definition!).catch((e: unknown) => e);

  assert.ok(error instanceof OpalUnavailableError, String(error));
  assert.equal(error.status, 500);
  assert.equal(error.timedOut, false);
  assert.deepEqual(error.request, { method: "POST", path: "/ws/project/p/resources" });
  assert.match(
    error.message,
    /^OPAL answered 500 to POST \/ws\/project\/p\/resources: InternalError/,
  );
  assert.equal(fake.requests.filter((r) => r.method === "POST").length, 2); // project + one resource
  assert.deepEqual(fake.state.resources, {});
});

Deno.test("HttpOpalClient scrubs secrets that OPAL echoes in an error", async () => {
  const adminPassword = "Adm1n#secret-value";
  await using fixture = await fakeFixture({
    admin: { username: "administrator", password: adminPassword },
  });
  const { client, fake } = fixture;
  await client.ensureProject("p");
  const [definition] = contractResources("p", "R3adOnly#secret-value");
  fake.failNext({
    method: "POST",
    path: /\/resources$/,
    status: 400,
    body: JSON.stringify({
      code: 400,
      status: "IllegalArgument",
      arguments: [
        `bad credentials R3adOnly#secret-value for ${adminPassword}`,
        definition!.credentials,
      ],
    }),
  });

  const error = await client.ensureResource(definition!).catch((e: unknown) => e);

  assert.ok(error instanceof OpalRejectedError, String(error));
  assert.equal(error.opalStatus, "IllegalArgument");
  assert.match(error.message, /bad credentials \*\*\* for \*\*\*/);
  assertNoSecrets(error, ["R3adOnly#secret-value", adminPassword]);
  assert.ok(!error.opalArguments.join(" ").includes("R3adOnly#secret-value"));
});

Deno.test("HttpOpalClient maps a 400 to OpalRejectedError with OPAL's status word and arguments", async () => {
  await using fixture = await fakeFixture();

  const error = await fixture.client.ensureProject("not.valid").catch((e: unknown) => e);

  assert.ok(error instanceof OpalRejectedError, String(error));
  assert.equal(error.code, "opal_rejected");
  assert.equal(error.status, 400);
  assert.equal(error.opalStatus, "IllegalArgument");
  assert.deepEqual(error.opalArguments, ["Not a valid project name"]);
  assert.equal(
    error.message,
    "OPAL answered 400 to POST /ws/projects: IllegalArgument (Not a valid project name)",
  );
});

Deno.test("HttpOpalClient maps a refused connection to OpalUnavailableError", async () => {
  await using fixture = await fakeFixture();
  await fixture.fake.goDown();

  const error = await fixture.client.checkReady().catch((e: unknown) => e);

  assert.ok(error instanceof OpalUnavailableError, String(error));
  assert.equal(error.status, undefined);
  assert.equal(error.timedOut, false);
  assert.match(error.message, /^Cannot reach OPAL at http:\/\/127\.0\.0\.1:\d+ for GET \/ws\//);
  assert.ok(error.cause !== undefined);

  await fixture.fake.comeUp();
  assert.equal((await fixture.client.checkReady()).principal, "administrator");
});

Deno.test("HttpOpalClient gives up after timeoutMs with OpalUnavailableError", async () => {
  await using fixture = await fakeFixture({}, { timeoutMs: 200 });
  fixture.fake.failNext({ path: "/ws/system/subject-profile/_current", delayMs: 10_000 });
  const started = performance.now();

  const error = await fixture.client.checkReady().catch((e: unknown) => e);

  const elapsed = performance.now() - started;
  assert.ok(error instanceof OpalUnavailableError, String(error));
  assert.equal(error.timedOut, true);
  assert.equal(
    error.message,
    "OPAL did not answer GET /ws/system/subject-profile/_current within 0.2 s",
  );
  assert.ok(elapsed >= 150 && elapsed < 3_000, `gave up after ${elapsed} ms`);
});

Deno.test("HttpOpalClient maps a malformed 2xx body or a redirect to OpalProtocolError", async (t) => {
  const cases: [label: string, status: number, body: string, message: RegExp][] = [
    ["not JSON", 200, "<html>login</html>", /body that is not JSON/],
    ["wrong shape", 200, "[]", /unexpected body/],
    ["redirect", 302, "", /with a redirect \(302\)/],
  ];
  for (const [label, status, body, message] of cases) {
    await t.step(label, async () => {
      await using fixture = await fakeFixture();
      fixture.fake.failNext({ path: "/ws/system/subject-profile/_current", status, body });

      const error = await fixture.client.checkReady().catch((e: unknown) => e);

      assert.ok(error instanceof OpalProtocolError, String(error));
      assert.match(error.message, message);
    });
  }
});

Deno.test("HttpOpalClient.ensureProject() accepts 'Project already exists' from a concurrent create", async () => {
  await using fixture = await fakeFixture();
  const { client, fake } = fixture;
  fake.seed({ projects: { p: {} } });
  // The GET misses the project (created meanwhile by another publish); the POST then finds it.
  fake.failNext({
    method: "GET",
    path: "/ws/project/p",
    status: 404,
    body: JSON.stringify({ code: 404, status: "NoSuchProject", arguments: ["p"] }),
  });

  assert.equal(await client.ensureProject("p"), "unchanged");
  assert.deepEqual(fake.requests.map((r) => `${r.method} ${r.path} ${r.status}`), [
    "GET /ws/project/p 404",
    "POST /ws/projects 400",
  ]);
});

Deno.test("HttpOpalClient.ensureUserInGroup() carries on after a 409 from a concurrent create", async () => {
  await using fixture = await fakeFixture();
  const { client, fake } = fixture;
  fake.seed({ users: { u: { password: "Seeded#Passw0rd", groups: ["other"] } } });
  fake.failNext({ method: "GET", path: "/ws/system/subject-credential/u", status: 404, body: "" });

  assert.equal(await client.ensureUserInGroup("u", "g", generateOpalPassword()), "updated");

  assert.deepEqual(fake.state.users.u?.groups, ["g", "other"]);
  assert.equal(fake.state.users.u?.password, "Seeded#Passw0rd");
  assert.deepEqual(fake.requests.map((r) => `${r.method} ${r.status}`), [
    "GET 404",
    "POST 409",
    "GET 200",
    "PUT 200",
  ]);
});

Deno.test("HttpOpalClient sends clean URLs: /ws once, upper-case enums, no leftover query", async () => {
  await using fixture = await fakeFixture({}, {});
  const { fake } = fixture;
  const client = new HttpOpalClient({
    baseUrl: `${fake.url}//`,
    username: fake.admin.username,
    password: fake.admin.password,
  });
  await client.ensureProject("p");
  await client.ensureDatashieldUse(opalGroupName("p"));
  await client.listResources("p");

  assert.deepEqual(fake.requests.map((r) => `${r.method} ${r.path}?${r.query}`), [
    "GET /ws/project/p?",
    "POST /ws/projects?",
    "GET /ws/system/permissions/datashield?type=GROUP",
    "POST /ws/system/permissions/datashield?type=GROUP&permission=DATASHIELD_USE&principal=p_group",
    "GET /ws/project/p/resources?",
  ]);
});

Deno.test("HttpOpalClient encodes every path segment: '#', '?', '%' and spaces reach OPAL intact", async () => {
  await using fixture = await fakeFixture();
  const { client, fake } = fixture;
  const user = "odd#user?x=1%20y";
  const group = "group #2 ?%";

  assert.equal(await client.ensureUserInGroup(user, group, generateOpalPassword()), "created");
  assert.equal(await client.ensureUserInGroup(user, group, generateOpalPassword()), "unchanged");

  assert.deepEqual(fake.state.groups, { [group]: [user] });
  assert.deepEqual(fake.requests.map((r) => `${r.method} ${r.path}?${r.query}`), [
    "GET /ws/system/subject-credential/odd%23user%3Fx%3D1%2520y?",
    "POST /ws/system/subject-credentials?",
    "GET /ws/system/subject-credential/odd%23user%3Fx%3D1%2520y?",
  ]);
});

Deno.test("HttpOpalClient refuses unusable addresses and timeouts without echoing credentials", async (t) => {
  const cases: [label: string, options: HttpOpalClientOptions, message: RegExp][] = [
    ["not a URL", { baseUrl: "opal.example", username: "a", password: "b" }, /not a URL/],
    ["ftp", { baseUrl: "ftp://opal.example", username: "a", password: "b" }, /http or https/],
    [
      "credentials in the URL",
      { baseUrl: "https://admin:S3cret%23pw@opal.example", username: "a", password: "b" },
      /must not contain credentials/,
    ],
    ["a query", { baseUrl: "https://opal.example/?x=1", username: "a", password: "b" }, /query/],
    [
      "timeout 0",
      { baseUrl: "https://opal.example", username: "a", password: "b", timeoutMs: 0 },
      /positive integer/,
    ],
  ];
  for (const [label, options, message] of cases) {
    await t.step(label, () => {
      const error = (() => {
        try {
          new HttpOpalClient(options);
        } catch (e) {
          return e;
        }
      })();
      assert.ok(error instanceof TypeError, String(error));
      assert.match(error.message, message);
      assert.ok(!error.message.includes("S3cret"));
    });
  }
});

Deno.test({
  name:
    `HttpOpalClient verifies TLS unless noSslVerify is true, for its own requests only ${NO_OPENSSL}`,
  ignore: TLS === undefined,
  fn: async () => {
    await using fake = await FakeOpal.start({ tls: TLS });
    assert.match(fake.url, /^https:/);
    const options = { baseUrl: fake.url, username: "administrator", password: "password" };

    const verifying = await new HttpOpalClient(options).checkReady().catch((e: unknown) => e);
    assert.ok(verifying instanceof OpalUnavailableError, String(verifying));
    assert.match(verifying.message, /certificate/i);
    assert.equal(fake.requests.length, 0, "no request may pass a failed TLS handshake");

    const unverified = new HttpOpalClient({ ...options, noSslVerify: true });
    assert.equal((await unverified.checkReady()).principal, "administrator");
    assert.equal(await unverified.ensureProject("tls project"), "created");
    assert.ok(fake.state.projects["tls project"] !== undefined);

    // The relaxed agent belongs to that one client: others still verify.
    await assert.rejects(new HttpOpalClient(options).checkReady(), OpalUnavailableError);
    await assert.rejects(fetch(`${fake.url}/ws/system/subject-profile/_current`), TypeError);
  },
});

Deno.test({
  name: `HttpOpalClient with noSslVerify still times out ${NO_OPENSSL}`,
  ignore: TLS === undefined,
  fn: async () => {
    await using fake = await FakeOpal.start({ tls: TLS });
    fake.failNext({ delayMs: 10_000 });
    const client = new HttpOpalClient({
      baseUrl: fake.url,
      username: "administrator",
      password: "password",
      noSslVerify: true,
      timeoutMs: 200,
    });

    const error = await client.checkReady().catch((e: unknown) => e);

    assert.ok(error instanceof OpalUnavailableError, String(error));
    assert.equal(error.timedOut, true);
  },
});

// -----------------------------------------------------------------------------------------------------------
// The fake itself behaves like OPAL where the adapter depends on it

Deno.test("FakeOpal behaves like OPAL on the points the adapter relies on", async (t) => {
  await using fake = await FakeOpal.start();
  const auth = { authorization: `Basic ${basicToken("administrator", "password")}` };
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${fake.url}${path}`, {
      method,
      headers: { ...auth, accept: "application/json", "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, text, type: res.headers.get("content-type") };
  };

  await t.step("lower-case enum values are 404 with an empty body", async () => {
    const res = await call(
      "POST",
      "/ws/system/permissions/datashield?type=group&principal=g&permission=DATASHIELD_USE",
    );
    assert.deepEqual([res.status, res.text], [404, ""]);
  });
  await t.step("unknown query parameters are ignored", async () => {
    assert.equal(
      (await call("GET", "/ws/system/permissions/datashield?type=GROUP&x=1")).status,
      200,
    );
  });
  await t.step("lists are bare arrays and empty fields are left out", async () => {
    fake.seed({ users: { lonely: { password: "L0nely#pass" } } });
    const res = await call("GET", "/ws/system/subject-credentials");
    assert.deepEqual(JSON.parse(res.text), [
      { name: "lonely", authenticationType: "PASSWORD", enabled: true },
    ]);
  });
  await t.step("errors use OPAL's error content type", async () => {
    const res = await call("GET", "/ws/project/missing");
    assert.equal(res.status, 404);
    assert.equal(res.type, "application/x-protobuf+json");
    assert.deepEqual(JSON.parse(res.text), {
      code: 404,
      status: "NoSuchProject",
      arguments: ["missing"],
    });
  });
  await t.step("a duplicate project is 400 and a duplicate user 409", async () => {
    assert.equal((await call("POST", "/ws/projects", { name: "p" })).status, 201);
    assert.equal((await call("POST", "/ws/projects", { name: "p" })).status, 400);
    const user = { name: "lonely", authenticationType: "PASSWORD", password: "L0nely#pass" };
    assert.equal((await call("POST", "/ws/system/subject-credentials", user)).status, 409);
  });
  await t.step("a weak password is 400 PasswordTooWeak", async () => {
    const user = { name: "new", authenticationType: "PASSWORD", password: "alllowercase1" };
    const res = await call("POST", "/ws/system/subject-credentials", user);
    assert.deepEqual([res.status, JSON.parse(res.text).status], [400, "PasswordTooWeak"]);
  });
  await t.step("three failed logins ban even the right password", async () => {
    const wrong = { authorization: `Basic ${basicToken("administrator", "nope")}` };
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${fake.url}/ws/system/subject-profile/_current`, { headers: wrong });
      await res.body?.cancel();
      assert.equal(res.status, 401);
    }
    assert.equal((await call("GET", "/ws/system/subject-profile/_current")).status, 401);
  });
});

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  InvalidOpalResourceError,
  OPAL_DATASHIELD_USER,
  opalPasswordProblem,
  OpalResourceNameClashError,
} from "../domain/opal.ts";
import {
  OpalAuthenticationError,
  type OpalClient,
  OpalUnavailableError,
} from "../ports/opal_client.ts";
import { HttpOpalClient } from "../adapters/opal/http_opal_client.ts";
import { FakeOpal, type FakeOpalState } from "../tests/support/fake_opal.ts";
import { type OpalPublication, OpalStepFailedError, publishToOpal } from "./opal_publication.ts";

/** Already an identifier, so the OPAL project has the same name. */
const PROJECT = "pr042";
const GROUP = "pr042_group";
const SCHEMA = "pr042_20250611_093000_oncology";
/** 8 hex digits of the SHA-256 of `text`, as `projectIdentifier` documents. */
function sha8(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex").slice(0, 8);
}

const RESOURCES_PATH = /^\/ws\/project\/[^/]+\/resources$/;

/** A publication of two tables, given in reverse order to show that the reply is sorted. */
function aPublication(overrides: Partial<OpalPublication> = {}): OpalPublication {
  return {
    project: PROJECT,
    tables: [{ schema: SCHEMA, table: "tumour_stage" }, { schema: SCHEMA, table: "patients" }],
    database: { host: "pg.internal", port: "5432", database: "opal-resource-db" },
    readOnly: { username: "ro_user", password: "ro-Passw0rd!" },
    ...overrides,
  };
}

const EXPECTED_REPLY = [
  {
    postgresql_table_name: `${SCHEMA}.patients`,
    opal_resource_name: `tre_postgresql_${SCHEMA}_patients`,
    opal_project_name: PROJECT,
    opal_group_name: GROUP,
  },
  {
    postgresql_table_name: `${SCHEMA}.tumour_stage`,
    opal_resource_name: `tre_postgresql_${SCHEMA}_tumour_stage`,
    opal_project_name: PROJECT,
    opal_group_name: GROUP,
  },
];

function clientFor(fake: FakeOpal, password = fake.admin.password): HttpOpalClient {
  return new HttpOpalClient({
    baseUrl: fake.url,
    username: fake.admin.username,
    password,
    timeoutMs: 5_000,
  });
}

/** The state without timestamps and with the random `dsuser_default` password checked and masked. */
function comparable(state: FakeOpalState): unknown {
  const copy = structuredClone(state) as unknown as {
    users: Record<string, { password?: string }>;
    projects: Record<string, { created?: string; updated?: string }>;
    resources: Record<string, Record<string, { created?: string; updated?: string }>>;
  };
  for (const user of Object.values(copy.users)) {
    if (user.password !== undefined) {
      assert.equal(opalPasswordProblem(user.password), undefined);
      user.password = "<policy-compliant>";
    }
  }
  for (const project of Object.values(copy.projects)) {
    delete project.created;
    delete project.updated;
  }
  for (const byName of Object.values(copy.resources)) {
    for (const resource of Object.values(byName)) {
      delete resource.created;
      delete resource.updated;
    }
  }
  return copy;
}

function expectedResource(table: string, password = "ro-Passw0rd!") {
  return {
    description: `Resource for table ${table} in schema ${SCHEMA}`,
    provider: "resourcer",
    factory: "sql",
    parameters: JSON.stringify({
      driver: "postgresql",
      host: "pg.internal",
      port: 5432,
      db: "opal-resource-db",
      schema: SCHEMA,
      table,
    }),
    credentials: JSON.stringify({ username: "ro_user", password }),
  };
}

const EXPECTED_STATE = {
  users: {
    [OPAL_DATASHIELD_USER]: {
      authenticationType: "PASSWORD",
      password: "<policy-compliant>",
      groups: [GROUP],
      enabled: true,
    },
  },
  groups: { [GROUP]: [OPAL_DATASHIELD_USER] },
  projects: {
    [PROJECT]: { title: PROJECT, description: `Data Access Request for project ${PROJECT}` },
  },
  resources: {
    [PROJECT]: {
      [`tre_postgresql_${SCHEMA}_patients`]: expectedResource("patients"),
      [`tre_postgresql_${SCHEMA}_tumour_stage`]: expectedResource("tumour_stage"),
    },
  },
  acls: [
    { node: "/datashield", principal: GROUP, type: "GROUP", permission: "DATASHIELD_USE" },
    {
      node: `/project/${PROJECT}`,
      principal: "administrator",
      type: "USER",
      permission: "PROJECT_ALL",
    },
    {
      node: `/project/${PROJECT}/resources`,
      principal: GROUP,
      type: "GROUP",
      permission: "RESOURCES_VIEW",
    },
  ],
};

/** Delegates to `inner`, but takes OPAL down just before the `n`-th `ensureResource` call (1-based). */
function goingDownBeforeResource(inner: OpalClient, fake: FakeOpal, n: number): OpalClient {
  let calls = 0;
  return {
    checkReady: () => inner.checkReady(),
    ensureProject: (name) => inner.ensureProject(name),
    ensureUserInGroup: (user, group, password) => inner.ensureUserInGroup(user, group, password),
    ensureDatashieldUse: (group) => inner.ensureDatashieldUse(group),
    ensureResource: async (definition) => {
      calls += 1;
      if (calls === n) await fake.goDown();
      return inner.ensureResource(definition);
    },
    ensureResourcesView: (project, group) => inner.ensureResourcesView(project, group),
    listResources: (project) => inner.listResources(project),
    deleteResource: (project, name) => inner.deleteResource(project, name),
    removeResourcesView: (project, group) => inner.removeResourcesView(project, group),
    removeGroup: (group) => inner.removeGroup(group),
  };
}

// -----------------------------------------------------------------------------------------------------------
// publishToOpal()

Deno.test("publishToOpal() on an empty OPAL creates exactly the expected state and reply", async () => {
  await using fake = await FakeOpal.start();

  const reply = await publishToOpal(clientFor(fake), aPublication());

  assert.deepEqual(reply, EXPECTED_REPLY);
  assert.deepEqual(comparable(fake.state), EXPECTED_STATE);
  assert.deepEqual(
    fake.requests.filter((r) => r.method !== "GET").map((r) => `${r.method} ${r.path} ${r.status}`),
    [
      "POST /ws/projects 201",
      "POST /ws/system/subject-credentials 200",
      "POST /ws/system/permissions/datashield 200",
      "POST /ws/project/pr042/resources 201",
      "POST /ws/project/pr042/resources 201",
      "POST /ws/project/pr042/permissions/resources 200",
    ],
  );
  assert.equal(fake.requests[0]?.path, "/ws/system/subject-profile/_current");
});

Deno.test("publishToOpal() twice gives the same reply and OPAL state, writing nothing the second time", async () => {
  await using fake = await FakeOpal.start();
  const client = clientFor(fake);
  const first = await publishToOpal(client, aPublication());
  const stateAfterFirst = fake.state;
  fake.clearRequests();

  const second = await publishToOpal(client, aPublication());

  assert.deepEqual(second, first);
  assert.deepEqual(fake.state, stateAfterFirst); // timestamps and the user's password included
  assert.deepEqual(fake.requests.filter((r) => r.method !== "GET"), []);
  assert.equal(fake.state.acls.length, 3, "no duplicate grants");
});

Deno.test("publishToOpal() adds dsuser_default to a group that already exists without it", async () => {
  await using fake = await FakeOpal.start();
  fake.seed({
    groups: [GROUP],
    users: { [OPAL_DATASHIELD_USER]: { password: "Seeded#Passw0rd", groups: ["other_group"] } },
  });

  await publishToOpal(clientFor(fake), aPublication());

  assert.deepEqual(fake.state.groups[GROUP], [OPAL_DATASHIELD_USER]);
  assert.deepEqual(fake.state.users[OPAL_DATASHIELD_USER], {
    authenticationType: "PASSWORD",
    password: "Seeded#Passw0rd",
    groups: ["other_group", GROUP],
    enabled: true,
  });
});

Deno.test("publishToOpal() creates dsuser_default inside a group that exists without members", async () => {
  await using fake = await FakeOpal.start();
  fake.seed({ groups: [GROUP] });

  await publishToOpal(clientFor(fake), aPublication());

  assert.deepEqual(comparable(fake.state), EXPECTED_STATE);
});

Deno.test("publishToOpal() updates a resource whose read-only password changed, keeping its creation time", async () => {
  await using fake = await FakeOpal.start();
  const client = clientFor(fake);
  await publishToOpal(client, aPublication());
  const before = fake.state.resources[PROJECT] ?? {};
  fake.clearRequests();

  const reply = await publishToOpal(
    client,
    aPublication({ readOnly: { username: "ro_user", password: "r0tated-Passw0rd!" } }),
  );

  assert.deepEqual(reply, EXPECTED_REPLY);
  const after = fake.state.resources[PROJECT] ?? {};
  for (const table of ["patients", "tumour_stage"]) {
    const name = `tre_postgresql_${SCHEMA}_${table}`;
    const { created, updated, ...definition } = after[name] ?? { created: "", updated: "" };
    assert.deepEqual(definition, expectedResource(table, "r0tated-Passw0rd!"));
    assert.equal(created, before[name]?.created);
    assert.notEqual(updated, before[name]?.updated);
  }
  assert.deepEqual(
    fake.requests.filter((r) => r.method !== "GET").map((r) => `${r.method} ${r.path}`),
    [
      `PUT /ws/project/pr042/resource/tre_postgresql_${SCHEMA}_patients`,
      `PUT /ws/project/pr042/resource/tre_postgresql_${SCHEMA}_tumour_stage`,
    ],
  );
});

Deno.test("publishToOpal() names the failing step when OPAL answers 503 midway, and a re-run completes", async () => {
  await using fake = await FakeOpal.start();
  const client = clientFor(fake);
  // The first resource is saved, then OPAL's proxy answers 503 until OPAL is back.
  fake.failNext({ method: "POST", path: RESOURCES_PATH, status: 503, after: 1, times: Infinity });

  const error = await publishToOpal(client, aPublication()).catch((e: unknown) => e);

  assert.ok(error instanceof OpalStepFailedError, String(error));
  assert.equal(error.code, "opal_step_failed");
  assert.equal(error.step, `create resource tre_postgresql_${SCHEMA}_tumour_stage`);
  assert.match(
    error.message,
    new RegExp(
      `^Cannot publish to OPAL: step "create resource tre_postgresql_${SCHEMA}_tumour_stage" ` +
        `failed: OPAL answered 503 to POST /ws/project/pr042/resources`,
    ),
  );
  assert.ok(error.cause instanceof OpalUnavailableError);
  assert.deepEqual(Object.keys(fake.state.resources[PROJECT] ?? {}), [
    `tre_postgresql_${SCHEMA}_patients`,
  ]);
  assert.ok(!fake.state.acls.some((a) => a.permission === "RESOURCES_VIEW"));

  fake.clearFaults();
  const reply = await publishToOpal(client, aPublication());

  assert.deepEqual(reply, EXPECTED_REPLY);
  assert.deepEqual(comparable(fake.state), EXPECTED_STATE);
});

Deno.test("publishToOpal() names the failing step when OPAL goes down midway, and a re-run completes", async () => {
  await using fake = await FakeOpal.start();
  const client = clientFor(fake);

  const error = await publishToOpal(goingDownBeforeResource(client, fake, 2), aPublication())
    .catch((e: unknown) => e);

  assert.ok(error instanceof OpalStepFailedError, String(error));
  assert.equal(error.step, `create resource tre_postgresql_${SCHEMA}_tumour_stage`);
  assert.ok(error.cause instanceof OpalUnavailableError);
  assert.match(error.message, /failed: Cannot reach OPAL at http:\/\/127\.0\.0\.1:\d+ for GET /);

  await fake.comeUp();
  const reply = await publishToOpal(client, aPublication());

  assert.deepEqual(reply, EXPECTED_REPLY);
  assert.deepEqual(comparable(fake.state), EXPECTED_STATE);
});

Deno.test("publishToOpal() stops at the login check when OPAL is down", async () => {
  await using fake = await FakeOpal.start();
  await fake.goDown();

  const error = await publishToOpal(clientFor(fake), aPublication()).catch((e: unknown) => e);

  assert.ok(error instanceof OpalStepFailedError, String(error));
  assert.equal(error.step, "check the OPAL login");
  assert.ok(error.cause instanceof OpalUnavailableError);
});

Deno.test("publishToOpal() fails on a 401 after exactly one request, without the password", async () => {
  await using fake = await FakeOpal.start();
  const password = "Wr0ng#Admin-password";

  const error = await publishToOpal(clientFor(fake, password), aPublication())
    .catch((e: unknown) => e);

  assert.ok(error instanceof OpalStepFailedError, String(error));
  assert.equal(error.step, "check the OPAL login");
  assert.ok(error.cause instanceof OpalAuthenticationError);
  assert.equal(error.cause.status, 401);
  assert.equal(fake.requests.length, 1);
  assert.ok(!error.message.includes(password));
  assert.ok(!error.message.includes(btoa(`administrator:${password}`)));
});

Deno.test("publishToOpal() sends nothing more after a 401 midway", async () => {
  await using fake = await FakeOpal.start();
  fake.failNext({ method: "POST", path: RESOURCES_PATH, status: 401 });

  const error = await publishToOpal(clientFor(fake), aPublication()).catch((e: unknown) => e);

  assert.ok(error instanceof OpalStepFailedError, String(error));
  assert.equal(error.step, `create resource tre_postgresql_${SCHEMA}_patients`);
  assert.ok(error.cause instanceof OpalAuthenticationError);
  const last = fake.requests.at(-1);
  assert.deepEqual([last?.method, last?.status], ["POST", 401]);
  assert.equal(fake.requests.filter((r) => r.status === 401).length, 1);
});

Deno.test("publishToOpal() keeps the read-only password out of its error, even when OPAL echoes it", async () => {
  await using fake = await FakeOpal.start();
  fake.failNext({
    method: "POST",
    path: RESOURCES_PATH,
    status: 400,
    body: JSON.stringify({ code: 400, status: "IllegalArgument", arguments: ["bad ro-Passw0rd!"] }),
  });

  const error = await publishToOpal(clientFor(fake), aPublication()).catch((e: unknown) => e);

  assert.ok(error instanceof OpalStepFailedError, String(error));
  assert.match(error.message, /IllegalArgument \(bad \*\*\*\)/);
  assert.ok(!error.message.includes("ro-Passw0rd!"));
});

Deno.test("publishToOpal() with no tables still sets up the project, group and grants", async () => {
  await using fake = await FakeOpal.start();

  assert.deepEqual(await publishToOpal(clientFor(fake), aPublication({ tables: [] })), []);

  assert.deepEqual(Object.keys(fake.state.projects), [PROJECT]);
  assert.deepEqual(fake.state.groups[GROUP], [OPAL_DATASHIELD_USER]);
  assert.deepEqual(fake.state.resources, {});
  assert.equal(fake.state.acls.filter((a) => a.principal === GROUP).length, 2);
});

Deno.test("publishToOpal() publishes a table listed twice once", async () => {
  await using fake = await FakeOpal.start();
  const table = { schema: SCHEMA, table: "patients" };

  const reply = await publishToOpal(clientFor(fake), aPublication({ tables: [table, table] }));

  assert.deepEqual(reply, [EXPECTED_REPLY[0]]);
  assert.deepEqual(Object.keys(fake.state.resources[PROJECT] ?? {}), [
    `tre_postgresql_${SCHEMA}_patients`,
  ]);
});

Deno.test("publishToOpal() names the OPAL project and group by the project identifier", async (t) => {
  const cases: [project: string, identifier: string][] = [
    ["CR8TOR Demo Project", `cr8tor_demo_project_${sha8("CR8TOR Demo Project")}`],
    ["Überprojekt", `berprojekt_${sha8("Überprojekt")}`],
    ["proj.v2", `proj_v2_${sha8("proj.v2")}`],
    ["Pr042", `pr042_${sha8("Pr042")}`],
  ];
  for (const [project, identifier] of cases) {
    await t.step(project, async () => {
      await using fake = await FakeOpal.start();

      const reply = await publishToOpal(clientFor(fake), aPublication({ project }));

      assert.deepEqual(
        reply.map((r) => [r.opal_project_name, r.opal_group_name]),
        [[identifier, `${identifier}_group`], [identifier, `${identifier}_group`]],
      );
      assert.deepEqual(Object.keys(fake.state.projects), [identifier]);
      assert.deepEqual(fake.state.groups, { [`${identifier}_group`]: [OPAL_DATASHIELD_USER] });
      assert.deepEqual(Object.keys(fake.state.resources), [identifier]);
    });
  }
});

Deno.test("publishToOpal() refuses bad input before sending anything to OPAL", async (t) => {
  const cases: [
    label: string,
    publication: OpalPublication,
    error: new (...a: never[]) => Error,
  ][] = [
    [
      "an unusable port",
      aPublication({ database: { host: "pg.internal", port: "54x", database: "db" } }),
      InvalidOpalResourceError,
    ],
    [
      "an unsafe table name",
      aPublication({ tables: [{ schema: SCHEMA, table: "x; drop" }] }),
      InvalidOpalResourceError,
    ],
    [
      "two tables with one resource name",
      aPublication({ tables: [{ schema: "a_b", table: "c" }, { schema: "a", table: "b_c" }] }),
      OpalResourceNameClashError,
    ],
  ];
  for (const [label, publication, errorClass] of cases) {
    await t.step(label, async () => {
      await using fake = await FakeOpal.start();

      const error = await publishToOpal(clientFor(fake), publication).catch((e: unknown) => e);

      assert.ok(error instanceof errorClass, String(error));
      assert.ok(!(error as Error).message.includes("ro-Passw0rd!"));
      assert.equal(fake.requests.length, 0);
    });
  }
});

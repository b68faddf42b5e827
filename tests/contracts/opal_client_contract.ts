/**
 * The contract every {@link OpalClient} passes (opal-api.md §8.5), against the fake OPAL or a real one:
 * a first run creates exactly the expected project, user, group, grants and resources; a second run
 * changes nothing; existing users, groups, stronger grants and changed resources are handled; a missing
 * project is a typed error. Names are random, so the suite can run against a shared server.
 *
 * What the server stores is read through an {@link OpalProbe}; request-level checks (auth header, `/ws`
 * paths, encoding, upper-case enums, string `parameters`) run when the probe can list requests (fakes).
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  generateOpalPassword,
  opalGroupName,
  type OpalResourceDefinition,
  opalResourceDefinition,
  opalResourceName,
} from "../../domain/opal.ts";
import {
  type OpalChange,
  type OpalClient,
  OpalProjectNotFoundError,
  OpalRejectedError,
} from "../../ports/opal_client.ts";

/** A user as the server holds it. */
export interface ProbedUser {
  readonly authenticationType: string;
  readonly groups: readonly string[];
  readonly enabled: boolean;
}

/** A resource as the server holds it, credentials included. */
export interface ProbedResource {
  readonly provider: string;
  readonly factory: string;
  readonly description?: string;
  readonly parameters: string;
  readonly credentials?: string;
  /** The URL the server computed, when it computes one. */
  readonly url?: string;
  readonly created?: string;
}

/** A request the server received (fakes only). */
export interface ProbedRequest {
  readonly method: string;
  /** Raw, still encoded. */
  readonly path: string;
  /** Raw query string without `?`. */
  readonly query: string;
  readonly body: unknown;
  readonly authorization: string | undefined;
}

/** Reads and prepares the server's state behind the client's back. */
export interface OpalProbe {
  /** True when the server computes `resource.url` (a fake, or OPAL with its R server up). */
  readonly computesResourceUrls: boolean;
  project(name: string): Promise<{ title: string; description?: string } | undefined>;
  user(name: string): Promise<ProbedUser | undefined>;
  /** A group's members, or `undefined` when the group does not exist. */
  groupMembers(name: string): Promise<readonly string[] | undefined>;
  /** The permissions of GROUP `group` on `/datashield`. */
  datashieldGrants(group: string): Promise<readonly string[]>;
  /** The permissions of GROUP `group` on `/project/{project}/resources`. */
  resourcesGrants(project: string, group: string): Promise<readonly string[]>;
  resource(project: string, name: string): Promise<ProbedResource | undefined>;
  resourceNames(project: string): Promise<readonly string[]>;
  seedProject(name: string, fields: { title: string; description: string }): Promise<void>;
  seedUser(
    name: string,
    fields: { password: string; groups: readonly string[]; enabled: boolean },
  ): Promise<void>;
  seedGroup(name: string): Promise<void>;
  seedDatashieldGrant(group: string, permission: string): Promise<void>;
  seedResourcesGrant(project: string, group: string, permission: string): Promise<void>;
  /** The user's stored password, when the server reveals it (fakes only). */
  userPassword?(name: string): Promise<string | undefined>;
  /** Requests received since the last {@link clearRequests} (fakes only). */
  requests?(): readonly ProbedRequest[];
  clearRequests?(): void;
}

/** The names one contract step uses; the fixture cleans them up on dispose. */
export interface OpalContractNames {
  readonly project: string;
  readonly group: string;
  readonly user: string;
  readonly otherGroup: string;
}

/** A client under test and a probe on the same server. */
export interface OpalContractFixture extends AsyncDisposable {
  readonly client: OpalClient;
  readonly probe: OpalProbe;
  /** The credentials the client logs in with. */
  readonly username: string;
  readonly password: string;
}

/** Builds a fixture whose disposal removes everything named in `names`. */
export type MakeOpalContractFixture = (names: OpalContractNames) => Promise<OpalContractFixture>;

const TABLES = [
  { schema: "pr042_20250611_093000_oncology", table: "tumour_stage" },
  { schema: "pr042_20250611_093000_oncology", table: "patients" },
] as const;

/** Distinct names for one step; `spaced` puts a space in the project name. */
export function contractNames(spaced = false): OpalContractNames {
  const id = crypto.randomUUID().replaceAll("-", "").slice(0, 10);
  const project = spaced ? `cr8tor contract ${id}` : `cr8tor_contract_${id}`;
  return {
    project,
    group: opalGroupName(project),
    user: `cr8tor_contract_user_${id}`,
    otherGroup: `cr8tor_contract_other_${id}`,
  };
}

/** The resource definitions the contract publishes, with the given read-only password. */
export function contractResources(
  project: string,
  readOnlyPassword = "ro-Passw0rd!",
): OpalResourceDefinition[] {
  return TABLES.map(({ schema, table }) =>
    opalResourceDefinition({
      project,
      schema,
      table,
      host: "pg.internal",
      port: "5432",
      database: "opal-resource-db",
      username: "ro_user",
      password: readOnlyPassword,
    })
  );
}

/** Runs every ensure operation once, in publish order; returns each outcome. */
async function ensureAll(
  client: OpalClient,
  names: OpalContractNames,
  resources: readonly OpalResourceDefinition[],
): Promise<OpalChange[]> {
  const outcomes = [
    await client.ensureProject(names.project),
    await client.ensureUserInGroup(names.user, names.group, generateOpalPassword()),
    await client.ensureDatashieldUse(names.group),
  ];
  for (const resource of resources) outcomes.push(await client.ensureResource(resource));
  outcomes.push(await client.ensureResourcesView(names.project, names.group));
  return outcomes;
}

/** Everything the probe sees for these names, for before/after comparisons. */
async function snapshot(probe: OpalProbe, names: OpalContractNames) {
  const resources: Record<string, ProbedResource | undefined> = {};
  for (const name of await probe.resourceNames(names.project)) {
    resources[name] = await probe.resource(names.project, name);
  }
  return {
    project: await probe.project(names.project),
    user: await probe.user(names.user),
    password: await probe.userPassword?.(names.user),
    members: await probe.groupMembers(names.group),
    datashield: await probe.datashieldGrants(names.group),
    resourcesView: await probe.resourcesGrants(names.project, names.group),
    resources,
  };
}

function basic(username: string, password: string): string {
  let binary = "";
  for (const byte of new TextEncoder().encode(`${username}:${password}`)) {
    binary += String.fromCharCode(byte);
  }
  return `Basic ${btoa(binary)}`;
}

/**
 * Runs the OpalClient contract.
 *
 * @param make builds a fixture for one step (a fresh fake, or a client on a live server).
 */
export async function opalClientContract(
  t: Deno.TestContext,
  make: MakeOpalContractFixture,
): Promise<void> {
  await t.step("checkReady() returns the logged-in principal", async () => {
    await using fixture = await make(contractNames());
    const login = await fixture.client.checkReady();
    assert.equal(login.principal, fixture.username);
  });

  await t.step("a first run on an empty server creates exactly the expected state", async () => {
    const names = contractNames();
    await using fixture = await make(names);
    const { client, probe } = fixture;
    const resources = contractResources(names.project);
    probe.clearRequests?.();

    const outcomes = await ensureAll(client, names, resources);

    assert.deepEqual(outcomes, ["created", "created", "created", "created", "created", "created"]);
    assert.deepEqual(await probe.project(names.project), {
      title: names.project,
      description: `Data Access Request for project ${names.project}`,
    });
    assert.deepEqual(await probe.user(names.user), {
      authenticationType: "PASSWORD",
      groups: [names.group],
      enabled: true,
    });
    assert.deepEqual(await probe.groupMembers(names.group), [names.user]);
    assert.deepEqual(await probe.datashieldGrants(names.group), ["DATASHIELD_USE"]);
    assert.deepEqual(await probe.resourcesGrants(names.project, names.group), ["RESOURCES_VIEW"]);
    assert.deepEqual(
      await probe.resourceNames(names.project),
      TABLES.map((x) => opalResourceName(x.schema, x.table)).sort(),
    );
    for (const { schema, table } of TABLES) {
      const stored = await probe.resource(names.project, opalResourceName(schema, table));
      assert.ok(stored !== undefined);
      assert.equal(stored.provider, "resourcer");
      assert.equal(stored.factory, "sql");
      assert.equal(stored.description, `Resource for table ${table} in schema ${schema}`);
      assert.deepEqual(JSON.parse(stored.parameters), {
        driver: "postgresql",
        host: "pg.internal",
        port: 5432,
        db: "opal-resource-db",
        schema,
        table,
      });
      assert.deepEqual(JSON.parse(stored.credentials ?? "null"), {
        username: "ro_user",
        password: "ro-Passw0rd!",
      });
      if (probe.computesResourceUrls) {
        assert.equal(
          stored.url,
          `postgresql://pg.internal:5432/opal-resource-db/${schema}/${table}`,
        );
      }
    }

    const requests = probe.requests?.();
    if (requests !== undefined) {
      assert.ok(requests.length > 0);
      const expectedAuth = basic(fixture.username, fixture.password);
      for (const r of requests) {
        assert.equal(r.authorization, expectedAuth, `${r.method} ${r.path} lacks Basic auth`);
        assert.match(r.path, /^\/ws\//);
      }
      const resourcePosts = requests.filter((r) =>
        r.method === "POST" && /^\/ws\/project\/[^/]+\/resources$/.test(r.path)
      );
      assert.equal(resourcePosts.length, TABLES.length);
      for (const post of resourcePosts) {
        const body = post.body as Record<string, unknown>;
        assert.equal(typeof body.parameters, "string", "parameters must be a JSON string");
        assert.equal(typeof body.credentials, "string", "credentials must be a JSON string");
        assert.equal(body.project, names.project);
        assert.equal(post.path, `/ws/project/${encodeURIComponent(names.project)}/resources`);
      }
      const grants = requests.filter((r) => r.method === "POST" && /permissions/.test(r.path));
      assert.equal(grants.length, 2);
      for (const grant of grants) {
        const query = new URLSearchParams(grant.query);
        assert.equal(query.get("type"), "GROUP");
        assert.match(query.get("permission") ?? "", /^(DATASHIELD_USE|RESOURCES_VIEW)$/);
        assert.equal(query.get("principal"), names.group);
      }
    }
  });

  await t.step("a second run changes nothing and sends no create or update", async () => {
    const names = contractNames();
    await using fixture = await make(names);
    const { client, probe } = fixture;
    const resources = contractResources(names.project);
    await ensureAll(client, names, resources);
    const before = await snapshot(probe, names);
    probe.clearRequests?.();

    const outcomes = await ensureAll(client, names, resources);

    assert.deepEqual(outcomes, [
      "unchanged",
      "unchanged",
      "unchanged",
      "unchanged",
      "unchanged",
      "unchanged",
    ]);
    assert.deepEqual(await snapshot(probe, names), before);
    const writes = probe.requests?.().filter((r) => r.method !== "GET");
    if (writes !== undefined) assert.deepEqual(writes.map((r) => `${r.method} ${r.path}`), []);
  });

  await t.step("a project name with a space is sent path-encoded", async () => {
    const names = contractNames(true);
    await using fixture = await make(names);
    const { client, probe } = fixture;
    probe.clearRequests?.();

    assert.equal(await client.ensureProject(names.project), "created");
    assert.equal(await client.ensureResourcesView(names.project, names.group), "created");

    assert.equal((await probe.project(names.project))?.title, names.project);
    assert.deepEqual(await probe.resourcesGrants(names.project, names.group), ["RESOURCES_VIEW"]);
    const paths = probe.requests?.().map((r) => r.path);
    if (paths !== undefined) {
      assert.ok(
        paths.includes(`/ws/project/${names.project.replaceAll(" ", "%20")}`),
        String(paths),
      );
    }
  });

  await t.step(
    "ensureProject() leaves an existing project's title and description alone",
    async () => {
      const names = contractNames();
      await using fixture = await make(names);
      await fixture.probe.seedProject(names.project, { title: "Kept", description: "Kept too" });

      assert.equal(await fixture.client.ensureProject(names.project), "unchanged");

      assert.deepEqual(await fixture.probe.project(names.project), {
        title: "Kept",
        description: "Kept too",
      });
    },
  );

  await t.step(
    "ensureUserInGroup() adds an existing user, keeping its groups, enabled flag and password",
    async () => {
      const names = contractNames();
      await using fixture = await make(names);
      const { client, probe } = fixture;
      await probe.seedUser(names.user, {
        password: "Seeded#Passw0rd",
        groups: [names.otherGroup],
        enabled: false,
      });
      probe.clearRequests?.();

      assert.equal(
        await client.ensureUserInGroup(names.user, names.group, generateOpalPassword()),
        "updated",
      );

      const user = await probe.user(names.user);
      assert.deepEqual([...(user?.groups ?? [])].sort(), [names.group, names.otherGroup].sort());
      assert.equal(user?.enabled, false);
      if (probe.userPassword !== undefined) {
        assert.equal(await probe.userPassword(names.user), "Seeded#Passw0rd");
      }
      const puts = probe.requests?.().filter((r) => r.method === "PUT");
      if (puts !== undefined) {
        assert.equal(puts.length, 1);
        assert.ok(!("password" in (puts[0]?.body as object)), "the PUT must not carry a password");
      }
    },
  );

  await t.step(
    "ensureUserInGroup() joins a group that already exists without the user",
    async () => {
      const names = contractNames();
      await using fixture = await make(names);
      const { client, probe } = fixture;
      await probe.seedGroup(names.group);
      await probe.seedUser(names.user, { password: "Seeded#Passw0rd", groups: [], enabled: true });
      assert.deepEqual(await probe.groupMembers(names.group), []);

      assert.equal(
        await client.ensureUserInGroup(names.user, names.group, generateOpalPassword()),
        "updated",
      );

      assert.deepEqual(await probe.groupMembers(names.group), [names.user]);
      assert.deepEqual((await probe.user(names.user))?.groups, [names.group]);
    },
  );

  await t.step(
    "ensureUserInGroup() creates a missing user in a group that already exists",
    async () => {
      const names = contractNames();
      await using fixture = await make(names);
      await fixture.probe.seedGroup(names.group);

      assert.equal(
        await fixture.client.ensureUserInGroup(names.user, names.group, generateOpalPassword()),
        "created",
      );

      assert.deepEqual(await fixture.probe.groupMembers(names.group), [names.user]);
    },
  );

  await t.step("ensureUserInGroup() refuses a weak password with OpalRejectedError", async () => {
    const names = contractNames();
    await using fixture = await make(names);
    const weak = "weakpassword";

    const error = await fixture.client.ensureUserInGroup(names.user, names.group, weak)
      .catch((e: unknown) => e);

    assert.ok(error instanceof OpalRejectedError, String(error));
    assert.equal(error.status, 400);
    assert.ok(!error.message.includes(weak), error.message);
    assert.equal(await fixture.probe.user(names.user), undefined);
  });

  await t.step("ensureDatashieldUse() never downgrades DATASHIELD_ALL", async () => {
    const names = contractNames();
    await using fixture = await make(names);
    await fixture.probe.seedDatashieldGrant(names.group, "DATASHIELD_ALL");

    assert.equal(await fixture.client.ensureDatashieldUse(names.group), "unchanged");

    assert.deepEqual(await fixture.probe.datashieldGrants(names.group), ["DATASHIELD_ALL"]);
  });

  await t.step("ensureResourcesView() never downgrades RESOURCES_ALL", async () => {
    const names = contractNames();
    await using fixture = await make(names);
    await fixture.client.ensureProject(names.project);
    await fixture.probe.seedResourcesGrant(names.project, names.group, "RESOURCES_ALL");

    assert.equal(await fixture.client.ensureResourcesView(names.project, names.group), "unchanged");

    assert.deepEqual(
      await fixture.probe.resourcesGrants(names.project, names.group),
      ["RESOURCES_ALL"],
    );
  });

  await t.step("ensureResource() updates a changed definition and keeps an equal one", async () => {
    const names = contractNames();
    await using fixture = await make(names);
    const { client, probe } = fixture;
    await client.ensureProject(names.project);
    const [original] = contractResources(names.project, "old-Passw0rd!");
    const [rotated] = contractResources(names.project, "new-Passw0rd!");
    assert.ok(original !== undefined && rotated !== undefined);
    assert.equal(await client.ensureResource(original), "created");
    const created = (await probe.resource(names.project, original.name))?.created;

    assert.equal(await client.ensureResource(rotated), "updated");
    assert.equal(await client.ensureResource(rotated), "unchanged");

    const stored = await probe.resource(names.project, rotated.name);
    assert.equal(JSON.parse(stored?.credentials ?? "{}").password, "new-Passw0rd!");
    assert.equal(stored?.created, created, "an update keeps the creation time");
    assert.deepEqual(await probe.resourceNames(names.project), [rotated.name]);
  });

  await t.step("ensureResource() treats key order in parameters as no change", async () => {
    const names = contractNames();
    await using fixture = await make(names);
    await fixture.client.ensureProject(names.project);
    const [definition] = contractResources(names.project);
    assert.ok(definition !== undefined);
    await fixture.client.ensureResource(definition);
    const reordered = Object.fromEntries(
      Object.entries(JSON.parse(definition.parameters)).reverse(),
    );

    assert.equal(
      await fixture.client.ensureResource({ ...definition, parameters: JSON.stringify(reordered) }),
      "unchanged",
    );
  });

  await t.step("operations on a missing project fail with OpalProjectNotFoundError", async () => {
    const names = contractNames();
    await using fixture = await make(names);
    const [definition] = contractResources(names.project);
    assert.ok(definition !== undefined);

    for (
      const attempt of [
        () => fixture.client.ensureResource(definition),
        () => fixture.client.ensureResourcesView(names.project, names.group),
        () => fixture.client.listResources(names.project),
      ]
    ) {
      const error = await attempt().catch((e: unknown) => e);
      assert.ok(error instanceof OpalProjectNotFoundError, String(error));
      assert.equal(error.projectName, names.project);
      assert.match(error.message, /does not exist/);
    }
    assert.equal(await fixture.probe.project(names.project), undefined);
  });

  await t.step(
    "listResources() lists the resources sorted by name, without credentials",
    async () => {
      const names = contractNames();
      await using fixture = await make(names);
      const { client, probe } = fixture;
      await client.ensureProject(names.project);
      assert.deepEqual(await client.listResources(names.project), []);
      const resources = contractResources(names.project);
      for (const resource of resources) await client.ensureResource(resource);

      const listed = await client.listResources(names.project);

      const expected = [...resources].sort((a, b) => (a.name < b.name ? -1 : 1));
      assert.deepEqual(listed.map((r) => r.name), expected.map((r) => r.name));
      for (const [i, summary] of listed.entries()) {
        assert.equal(summary.parameters, expected[i]?.parameters);
        assert.equal(summary.factory, "sql");
        assert.ok(!("credentials" in summary));
        if (probe.computesResourceUrls) assert.match(summary.url ?? "", /^postgresql:\/\//);
      }
    },
  );

  await t.step(
    "removal deletes the resources, the group's grants and the group, and repeats as a no-op",
    async () => {
      const names = contractNames();
      await using fixture = await make(names);
      const { client, probe } = fixture;
      const resources = contractResources(names.project);
      await ensureAll(client, names, resources);

      const first = [
        ...await Promise.all(resources.map((r) => client.deleteResource(names.project, r.name))),
        await client.removeResourcesView(names.project, names.group),
        await client.removeGroup(names.group),
      ];

      assert.deepEqual(first, resources.map(() => "deleted").concat(["deleted", "deleted"]));
      assert.deepEqual(await probe.resourceNames(names.project), []);
      assert.deepEqual(await probe.resourcesGrants(names.project, names.group), []);
      assert.deepEqual(await probe.datashieldGrants(names.group), []);
      assert.equal(await probe.groupMembers(names.group), undefined);
      assert.deepEqual((await probe.user(names.user))?.groups, [], "the user stays, groupless");
      assert.ok(await probe.project(names.project) !== undefined, "the project stays");

      probe.clearRequests?.();
      const again = [
        ...await Promise.all(resources.map((r) => client.deleteResource(names.project, r.name))),
        await client.removeResourcesView(names.project, names.group),
        await client.removeGroup(names.group),
      ];

      assert.deepEqual(again, resources.map(() => "missing").concat(["missing", "missing"]));
      const writes = probe.requests?.().filter((r) => r.method !== "GET");
      if (writes !== undefined) assert.deepEqual(writes, []);
    },
  );

  await t.step("removal on a missing project is a no-op, not an error", async () => {
    const names = contractNames();
    await using fixture = await make(names);
    const { client } = fixture;
    assert.equal(await client.deleteResource(names.project, "tre_postgresql_s_t"), "missing");
    assert.equal(await client.removeResourcesView(names.project, names.group), "missing");
    assert.equal(await client.removeGroup(names.group), "missing");
  });
}

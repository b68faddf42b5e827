/**
 * End to end with approval gates on: three real processes, a real PostgreSQL source, a policy file and a
 * test identity provider on loopback. The CLI's calls (with the gateway's key) are refused 409
 * `approval_required` until the right people, signed in with their own tokens, approve; a disclosure
 * approval binds to the staged bytes, so packaging again resets it; and an approval older than the
 * policy allows no longer counts.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PostgresSandbox } from "../support/databases.ts";
import { bagProblems } from "../support/bagit_check.ts";
import { type KeyServer, startKeyServer, TEST_AUDIENCE } from "../support/identity_providers.ts";
import {
  type JsonReply,
  newServiceKeys,
  postToService,
  type ServiceProcess,
  type ServiceStack,
  startStack,
} from "../support/processes.ts";
import { allowedLocalPostgres, ignorePostgres, POSTGRES, randomName } from "../support/services.ts";

const KEYS = newServiceKeys();
const PROJECT = "Gated Project";
const START = "20261206_120000";
const DESTINATION = { name: "LSC", type: "filestore", format: "csv" };

const PEOPLE_DDL = `
  create table $s.people (id integer not null primary key, name varchar(40));
  insert into $s.people values (1, 'Ada'), (2, 'Grace'), (3, null);
`;

function policy(maxAgeDays: number) {
  return {
    approval_types: {
      INFORMATION_GOVERNANCE: { roles: ["ig-approver"] },
      DATA_ENGINEER: { roles: ["data-engineer"] },
      OUTPUT_CHECKER: { roles: ["output-checker"] },
    },
    gates: [
      {
        name: "sign_off",
        before: "package",
        require: { INFORMATION_GOVERNANCE: 1, DATA_ENGINEER: 1 },
      },
      { name: "disclosure", before: "publish", require: { OUTPUT_CHECKER: 2 } },
    ],
    separation_of_duties: true,
    approval_max_age_days: maxAgeDays,
    destinations: ["LSC"],
  };
}

/** One gated deployment: the source, the stack, the identity provider and a work directory. */
interface Gated {
  readonly stack: ServiceStack;
  readonly idp: KeyServer;
  readonly storage: string;
  readonly schema: string;
  readonly source: Record<string, unknown>;
}

async function withGatedStack(maxAgeDays: number, fn: (g: Gated) => Promise<void>): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), "cr8tor-e2e-gates-"));
  const secrets = join(work, "secrets");
  const storage = join(work, "lsc");
  const pg = new PostgresSandbox();
  const schema = randomName("cr8_gates");
  const services: ServiceProcess[] = [];
  const idp = await startKeyServer();
  try {
    await mkdir(secrets);
    await mkdir(join(storage, "staging"), { recursive: true });
    await mkdir(join(storage, "production"));
    await pg.createRole();
    await pg.createSchema(schema, PEOPLE_DDL);
    const files = { ...KEYS, pguser: pg.role, pgpassword: pg.password };
    for (const [name, value] of Object.entries(files)) await writeFile(join(secrets, name), value);
    const policyFile = join(work, "policy.json");
    await writeFile(policyFile, JSON.stringify(policy(maxAgeDays)));
    const stack = await startStack({
      secrets,
      storage,
      allowedSources: [allowedLocalPostgres()],
      approvalEnv: {
        APPROVAL_POLICY_FILE: policyFile,
        OIDC_ISSUER_URL: idp.issuer,
        OIDC_AUDIENCE: TEST_AUDIENCE,
        STATE_DIR: join(work, "approval-state"),
      },
    }, services);
    const source = {
      type: "postgresql",
      host_url: POSTGRES.host,
      port: POSTGRES.port,
      database: POSTGRES.database,
      credentials: { username_key: "pguser", password_key: "pgpassword" },
    };
    await fn({ stack, idp, storage, schema, source });
    for (const service of services) await service.stop();
    const logs = services.flatMap((s) => s.logs).join("\n");
    for (const secret of [...Object.values(KEYS), pg.password]) assert.ok(!logs.includes(secret));
  } finally {
    for (const service of services) await service.stop();
    await idp[Symbol.asyncDispose]();
    await pg.cleanup();
    await rm(work, { recursive: true, force: true });
  }
}

/** The CLI's package request: every table, or only the ones given. */
function transfer(g: Gated, tables: unknown = null): Record<string, unknown> {
  return {
    project_name: PROJECT,
    project_start_time: START,
    destination: DESTINATION,
    source: g.source,
    dataset: { name: g.schema, schema_name: g.schema, tables },
  };
}

const PUBLISH = { project_name: PROJECT, project_start_time: START, destination: DESTINATION };

/** The CLI: the gateway's key. */
function cli(g: Gated, step: string, body: unknown): Promise<JsonReply> {
  return postToService(`${g.stack.approval.url}/project/${step}`, body, KEYS.approvalserviceapikey);
}

/** A person, signed in with a token of the test identity provider. */
async function asPerson(
  g: Gated,
  who: { sub: string; roles: string[] },
  path: string,
  body?: unknown,
): Promise<JsonReply> {
  const token = await g.idp.sign({
    sub: who.sub,
    preferred_username: who.sub,
    realm_access: { roles: who.roles },
  });
  const res = await fetch(`${g.stack.approval.url}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, json: await res.json() };
}

const IG = { sub: "ines.governance", roles: ["ig-approver"] };
const DE = { sub: "dan.engineer", roles: ["data-engineer"] };
const OC1 = { sub: "olga.checker", roles: ["output-checker"] };
const OC2 = { sub: "oscar.checker", roles: ["output-checker"] };

function approve(g: Gated, who: typeof IG, id: string, gate: string, type: string) {
  return asPerson(g, who, `/releases/${id}/decisions`, {
    gate,
    approval_type: type,
    decision: "approve",
    comment: `approved by ${who.sub}`,
  });
}

Deno.test({
  name:
    "e2e gates on: package and publish wait for the right people, publish only the approved bytes",
  ignore: ignorePostgres,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    await withGatedStack(30, async (g) => {
      let id = "";
      await t.step("validate is not gated", async () => {
        const res = await cli(g, "validate", transfer(g));
        assert.equal(res.status, 200, JSON.stringify(res.json));
      });

      await t.step("package: 409 approval_required, missing IG and DE", async () => {
        const res = await cli(g, "package", transfer(g));
        assert.equal(res.status, 409, JSON.stringify(res.json));
        assert.equal(res.json.payload.code, "approval_required");
        assert.equal(res.json.payload.gate, "sign_off");
        assert.deepEqual(res.json.payload.missing, {
          INFORMATION_GOVERNANCE: 1,
          DATA_ENGINEER: 1,
        });
        id = res.json.payload.release_id;
        const awaiting = await asPerson(g, IG, "/releases?awaiting=me");
        assert.equal(awaiting.status, 200, JSON.stringify(awaiting.json));
        assert.deepEqual(awaiting.json.payload.releases.map((r: { id: string }) => r.id), [id]);
        assert.equal(awaiting.json.payload.releases[0].requested_by.kind, "key");
      });

      await t.step("two different people sign off; package goes through", async () => {
        for (
          const [who, type] of [[IG, "INFORMATION_GOVERNANCE"], [DE, "DATA_ENGINEER"]] as const
        ) {
          const res = await approve(g, who, id, "sign_off", type);
          assert.equal(res.status, 200, JSON.stringify(res.json));
        }
        const res = await cli(g, "package", transfer(g));
        assert.equal(res.status, 200, JSON.stringify(res.json));
      });

      await t.step("publish: 409 until two output checkers approve what is staged", async () => {
        const refused = await cli(g, "publish", PUBLISH);
        assert.equal(refused.status, 409, JSON.stringify(refused.json));
        assert.equal(refused.json.payload.gate, "disclosure");
        assert.deepEqual(refused.json.payload.missing, { OUTPUT_CHECKER: 2 });
        const view = await asPerson(g, OC1, `/releases/${id}`);
        assert.equal(view.status, 200, JSON.stringify(view.json));
        const digest = view.json.payload.staging.staging_digest;
        assert.match(digest, /^[0-9a-f]{64}$/);
        // The gateway asked for the disclosure pre-checks (a gate before publish covers LSC), although
        // the publish service runs with the default DISCLOSURE_CHECKS=requested.
        assert.deepEqual(view.json.payload.staging.unchecked_datasets, []);
        const [checked] = view.json.payload.staging.tables;
        assert.equal(checked.table, "people");
        assert.equal(checked.disclosure.rows, 3);
        assert.deepEqual(view.json.payload.allowed_actions.map((a: { gate: string }) => a.gate), [
          "disclosure",
        ]);
        for (const who of [OC1, OC2]) {
          const res = await approve(g, who, id, "disclosure", "OUTPUT_CHECKER");
          assert.equal(res.status, 200, JSON.stringify(res.json));
          assert.equal(res.json.payload.decisions.at(-1).manifest_digest, digest);
        }
      });

      await t.step(
        "packaging other content changes staging: the disclosure gate resets",
        async () => {
          // One column fewer: other bytes. (The same rows again would stage the same bytes, and the
          // approval of those bytes would still hold.)
          const narrower = [{ name: "people", columns: [{ name: "id" }] }];
          const repackaged = await cli(g, "package", transfer(g, narrower));
          assert.equal(repackaged.status, 200, JSON.stringify(repackaged.json));
          const refused = await cli(g, "publish", PUBLISH);
          assert.equal(refused.status, 409, JSON.stringify(refused.json));
          assert.equal(refused.json.payload.code, "approval_required");
          assert.deepEqual(refused.json.payload.missing, { OUTPUT_CHECKER: 2 });
        },
      );

      await t.step("approved again, publish goes through and the bag verifies", async () => {
        for (const who of [OC1, OC2]) {
          const res = await approve(g, who, id, "disclosure", "OUTPUT_CHECKER");
          assert.equal(res.status, 200, JSON.stringify(res.json));
        }
        const res = await cli(g, "publish", PUBLISH);
        assert.equal(res.status, 200, JSON.stringify(res.json));
        assert.deepEqual(
          await bagProblems(join(g.storage, "production", PROJECT, START)),
          [],
        );
        await stat(join(g.storage, "production", PROJECT, START, "disclosure-checks.json"));
      });
    });
  },
});

Deno.test({
  name: "e2e gates on: an approval older than approval_max_age_days no longer counts",
  ignore: ignorePostgres,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    // 0.0001 days: an approval counts for about 8.6 s.
    await withGatedStack(0.0001, async (g) => {
      const first = await cli(g, "package", transfer(g));
      assert.equal(first.status, 409, JSON.stringify(first.json));
      const id = first.json.payload.release_id;
      const approvedAt = Date.now();
      await approve(g, IG, id, "sign_off", "INFORMATION_GOVERNANCE");
      await approve(g, DE, id, "sign_off", "DATA_ENGINEER");
      await new Promise((resolve) =>
        setTimeout(resolve, Math.max(0, approvedAt + 9000 - Date.now()))
      );
      const late = await cli(g, "package", transfer(g));
      assert.equal(late.status, 409, JSON.stringify(late.json));
      assert.deepEqual(late.json.payload.missing, {
        INFORMATION_GOVERNANCE: 1,
        DATA_ENGINEER: 1,
      });
    });
  },
});

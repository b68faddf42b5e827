/**
 * `compose.yaml` and its files under `deploy/compose/`: parsed and checked against the code, since no
 * Docker engine runs the tests (docs/deploy.md says what was run by hand).
 *
 * @module
 */
import assert from "node:assert/strict";
import { posix } from "node:path";
import { demoSqlText } from "../../deploy/compose/write_demo_sql.ts";
import {
  allowListSecrets,
  buildFacts,
  cleanupSeconds,
  type Doc,
  graceSeconds,
  list,
  obj,
  parseYaml,
  readmeVariables,
  readRepoFile,
  type Service,
  SERVICES,
  unreadVariables,
} from "./_deploy.ts";

const [compose] = parseYaml(await readRepoFile("compose.yaml"), "compose.yaml", "1.2");
const services = obj(compose!.services);

function serviceOf(name: string): Doc {
  const service = obj(services[name]);
  assert.ok(Object.keys(service).length > 0, `compose.yaml has no service ${name}`);
  return service;
}

/** A compose `environment:` (map or list form) as a record. */
function environmentOf(service: Doc): Record<string, string> {
  const env = service.environment;
  if (Array.isArray(env)) {
    return Object.fromEntries(env.map((e) => {
      const [k, ...v] = String(e).split("=");
      return [k!, v.join("=")];
    }));
  }
  return Object.fromEntries(Object.entries(obj(env)).map(([k, v]) => [k, String(v)]));
}

/** A service's volume mounts as {source, target}. */
function mountsOf(service: Doc): { source: string; target: string }[] {
  return list(service.volumes).map((v) => {
    if (typeof v === "string") {
      const [source, target] = v.split(":");
      return { source: source!, target: target! };
    }
    return { source: String(obj(v).source), target: String(obj(v).target) };
  });
}

/** The secret names a service mounts. */
function secretsOf(service: Doc): string[] {
  return list(service.secrets).map((s) => typeof s === "string" ? s : String(obj(s).source));
}

/** Compose durations such as `45s` or `1m30s`, in seconds. */
function seconds(duration: unknown): number {
  let total = 0;
  for (const [, n, unit] of String(duration).matchAll(/(\d+)(h|m|s)/g)) {
    total += Number(n) * { h: 3600, m: 60, s: 1 }[unit as "h" | "m" | "s"];
  }
  return total;
}

Deno.test("compose.yaml: each service is built from its Dockerfile target", () => {
  for (const service of SERVICES) {
    const build = obj(serviceOf(service).build);
    assert.equal(build.context, ".", service);
    assert.equal(build.target, service, service);
  }
});

Deno.test("compose.yaml: every variable a service sets is one it reads and README documents", async () => {
  const documented = await readmeVariables();
  const problems: string[] = [];
  for (const service of SERVICES) {
    const env = environmentOf(serviceOf(service));
    for (const name of await unreadVariables(service, env)) {
      problems.push(`${service}: sets ${name}, which the service does not read`);
    }
    for (const name of Object.keys(env).filter((n) => !documented.has(n))) {
      problems.push(`${service}: sets ${name}, which README.md's configuration table lacks`);
    }
  }
  assert.deepStrictEqual(problems, []);
});

Deno.test("compose.yaml: secrets come from files, and each service mounts those it reads", async () => {
  const secrets = obj(compose!.secrets);
  for (const [name, secret] of Object.entries(secrets)) {
    assert.deepStrictEqual(Object.keys(obj(secret)), ["file"], `secret ${name} is not a file`);
    assert.equal(obj(secret).file, `./deploy/compose/secrets/${name}`, name);
  }
  const ignore = await readRepoFile("deploy/compose/secrets/.gitignore");
  assert.match(ignore, /^\*$/m, "deploy/compose/secrets/ is not ignored by git");
  const script = await readRepoFile("deploy/compose/make-secrets.sh");
  const allowList = await readRepoFile("deploy/compose/allowed-sources.json");
  for (const service of SERVICES) {
    const definition = serviceOf(service);
    const env = environmentOf(definition);
    assert.equal(env.SECRETS_MNT_PATH ?? "/run/secrets", "/run/secrets", service);
    const needed = [
      ...(await buildFacts(service)).apiKeys,
      ...(env.ALLOWED_SOURCES_FILE === undefined ? [] : allowListSecrets(allowList)),
    ];
    for (const name of needed) {
      assert.ok(secretsOf(definition).includes(name), `${service} does not mount secret ${name}`);
      assert.ok(name in secrets, `secret ${name} is not defined`);
    }
    for (const value of Object.values(env)) {
      assert.doesNotMatch(value, /^[0-9a-f]{32,}$/, `${service} has what looks like a key inline`);
    }
  }
  for (const name of Object.keys(secrets)) {
    assert.match(
      script,
      new RegExp(`^make ${name} `, "m"),
      `make-secrets.sh does not make ${name}`,
    );
  }
});

Deno.test("compose.yaml: the allow-list admits the demo database, on a network metadata and publish share", async () => {
  const allowList = JSON.parse(await readRepoFile("deploy/compose/allowed-sources.json")) as {
    sources: { host: string; port: number; database: string }[];
  };
  const secretNames = allowListSecrets(JSON.stringify(allowList));
  const [source] = allowList.sources;
  const database = serviceOf(source!.host);
  assert.equal(source!.port, 5432);
  assert.equal(environmentOf(database).POSTGRES_DB, source!.database);
  assert.deepStrictEqual(
    secretNames.filter((s) => !secretsOf(database).includes(s)),
    [],
    "source-db does not get the login the allow-list names",
  );
  for (const service of ["metadata", "publish"] as const) {
    const definition = serviceOf(service);
    const env = environmentOf(definition);
    const mount = mountsOf(definition).find((m) => m.target === env.ALLOWED_SOURCES_FILE);
    assert.equal(mount?.source, "./deploy/compose/allowed-sources.json", service);
    const shared = list(definition.networks).filter((n) => list(database.networks).includes(n));
    assert.ok(shared.length > 0, `${service} cannot reach ${source!.host}`);
  }
  const init = mountsOf(database).find((m) => m.target === "/docker-entrypoint-initdb.d");
  assert.equal(init?.source, "./deploy/compose/initdb");
});

Deno.test("deploy/compose/initdb/01-demo-data.sql is tools/demo_data.ts's dataset (regenerate: deno run -RW deploy/compose/write_demo_sql.ts)", async () => {
  assert.equal(await readRepoFile("deploy/compose/initdb/01-demo-data.sql"), demoSqlText());
});

/**
 * What is wrong with the upload quarantine (`UPLOAD_QUARANTINE_PATH`) in a compose file's services: it
 * must be set in approval (which writes it) and publish (which stages approved files from it), each
 * mounting the same named volume exactly there, writable (each makes it owner-only at start); no other
 * service may mount that volume.
 */
function quarantineProblems(
  all: Doc,
  volumes: Doc,
): string[] {
  const problems: string[] = [];
  const shared = new Set<string>();
  for (const service of ["approval", "publish"]) {
    const definition = obj(all[service]);
    const path = environmentOf(definition).UPLOAD_QUARANTINE_PATH;
    if (path === undefined) {
      problems.push(`${service}: UPLOAD_QUARANTINE_PATH is not set`);
      continue;
    }
    const mount = list(definition.volumes).map(String).find((v) => v.split(":")[1] === path);
    const [source, , mode] = (mount ?? "").split(":");
    if (mount === undefined || !(source! in volumes)) {
      problems.push(`${service}: UPLOAD_QUARANTINE_PATH ${path} is not on a named volume`);
      continue;
    }
    if (mode === "ro") problems.push(`${service}: the upload quarantine is mounted read-only`);
    shared.add(source!);
  }
  if (shared.size > 1) {
    problems.push(`approval and publish mount different quarantine volumes: ${[...shared]}`);
  }
  for (const [name, definition] of Object.entries(all)) {
    if (name === "approval" || name === "publish") continue;
    for (const volume of list(obj(definition).volumes).map((v) => String(v).split(":")[0]!)) {
      if (shared.has(volume)) problems.push(`${name}: mounts the upload quarantine ${volume}`);
    }
  }
  return problems;
}

Deno.test("compose.yaml: the upload quarantine is one volume approval and publish share, and only they mount", async (t) => {
  const volumes = obj(compose!.volumes);
  await t.step(
    "as written",
    () => assert.deepStrictEqual(quarantineProblems(services, volumes), []),
  );
  const changed = (service: string, change: (definition: Doc) => void) => {
    const copy = structuredClone(services);
    change(obj(copy[service]));
    return quarantineProblems(copy, volumes);
  };
  const withoutMount = (d: Doc) => {
    d.volumes = list(d.volumes).filter((v) => !String(v).startsWith("uploads:"));
  };
  await t.step("publish without the volume: a problem", () => {
    assert.deepStrictEqual(changed("publish", withoutMount), [
      "publish: UPLOAD_QUARANTINE_PATH /data/uploads is not on a named volume",
    ]);
  });
  await t.step("approval without the volume: a problem", () => {
    assert.deepStrictEqual(changed("approval", withoutMount), [
      "approval: UPLOAD_QUARANTINE_PATH /data/uploads is not on a named volume",
    ]);
  });
  await t.step("publish on another volume, or read-only, or unset: a problem", () => {
    assert.deepStrictEqual(
      changed("publish", (d) => {
        d.volumes = list(d.volumes).map((v) =>
          String(v).startsWith("uploads:") ? "publish-state:/data/uploads" : v
        );
      }),
      ["approval and publish mount different quarantine volumes: uploads,publish-state"],
    );
    assert.deepStrictEqual(
      changed("publish", (d) => {
        d.volumes = list(d.volumes).map((v) =>
          String(v).startsWith("uploads:") ? "uploads:/data/uploads:ro" : v
        );
      }),
      ["publish: the upload quarantine is mounted read-only"],
    );
    assert.deepStrictEqual(
      changed("publish", (d) => {
        delete obj(d.environment).UPLOAD_QUARANTINE_PATH;
      }),
      ["publish: UPLOAD_QUARANTINE_PATH is not set"],
    );
  });
  await t.step("metadata mounting it: a problem", () => {
    assert.deepStrictEqual(
      changed("metadata", (d) => {
        d.volumes = [...list(d.volumes), "uploads:/data/uploads"];
      }),
      ["metadata: mounts the upload quarantine uploads"],
    );
  });
});

Deno.test("compose.yaml: volumes, gateway wiring, hardening and stop timeout", async () => {
  const cleanup = cleanupSeconds();
  const ports: Record<string, number> = {};
  for (const service of SERVICES) {
    ports[service] = Number(
      environmentOf(serviceOf(service)).PORT ?? (await buildFacts(service)).port,
    );
  }
  const volumes = obj(compose!.volumes);
  for (const service of SERVICES) {
    const definition = serviceOf(service);
    const env = environmentOf(definition);
    const mounts = mountsOf(definition);
    assert.equal(definition.read_only, true, `${service}: root filesystem writable`);
    assert.ok(list(definition.tmpfs).includes("/tmp"), `${service}: no tmpfs on /tmp`);
    assert.ok(list(definition.cap_drop).includes("ALL"), `${service}: capabilities kept`);
    assert.ok(list(definition.security_opt).includes("no-new-privileges:true"), service);
    assert.ok(
      seconds(definition.stop_grace_period) >= graceSeconds(env) + cleanup,
      `${service}: stop_grace_period shorter than SHUTDOWN_GRACE_SECONDS + ${cleanup} s`,
    );
    if (env.AUDIT_LOG_PATH !== undefined) {
      const dir = posix.dirname(env.AUDIT_LOG_PATH);
      const mount = mounts.find((m) => m.target === dir);
      assert.ok(
        mount !== undefined && mount.source in volumes,
        `${service}: audit not on a volume`,
      );
    }
    for (const [name, base] of Object.entries(env)) {
      if (!/^TARGET_STORAGE_ACCOUNT_.+_SDE_MNT_PATH$/.test(name)) continue;
      for (const area of ["staging", "production"]) {
        const mount = mounts.find((m) => m.target === `${base}/${area}`);
        assert.ok(mount !== undefined && mount.source in volumes, `${name}: no volume for ${area}`);
      }
    }
    const published = list(definition.ports).map(String);
    if (service === "approval") {
      assert.deepStrictEqual(published, [`127.0.0.1:${ports.approval}:${ports.approval}`]);
    } else assert.deepStrictEqual(published, [], `${service} must not publish a port`);
  }
  const gateway = environmentOf(serviceOf("approval"));
  for (const target of ["metadata", "publish"] as Service[]) {
    const prefix = target.toUpperCase();
    assert.equal(gateway[`${prefix}_CONTAINER_NAME`], target);
    assert.equal(Number(gateway[`${prefix}_CONTAINER_PORT`]), ports[target]);
  }
});

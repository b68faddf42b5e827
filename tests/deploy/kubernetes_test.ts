/**
 * The Kubernetes manifests (`k8s/`): the base's files as written, and the base and every overlay as
 * `kubectl kustomize` renders them when kubectl is installed. What they must say is derived from the
 * code: the variables each service reads, its port, its API keys, its shutdown timings.
 *
 * @module
 */
import assert from "node:assert/strict";
import { CommonEnv } from "../../apps/_shared/config.ts";
import {
  type BuildFacts,
  buildFacts,
  commandWorks,
  type Doc,
  kustomize,
  list,
  obj,
  parseYaml,
  readmeVariables,
  readRepoFile,
  repoPath,
  type Service,
  SERVICES,
  unreadVariables,
} from "./_deploy.ts";
import {
  containerOf,
  deploymentOf,
  deploymentProblems,
  envNamesOf,
  envOf,
  find,
  ingressProblems,
  metricsScrapeProblems,
  mountedSecretFiles,
  nameOf,
  networkPolicyProblems,
  ofKind,
  publishReplicaProblems,
  secretsNeeded,
  serviceProblems,
  uploadQuarantineProblems,
} from "./_kubernetes_checks.ts";

const KUBECTL = await commandWorks("kubectl", ["version", "--client"]);
const OVERLAYS = [...Deno.readDirSync(repoPath("k8s/overlays"))].filter((e) => e.isDirectory)
  .map((e) => `k8s/overlays/${e.name}`).sort();

/** Every YAML file under k8s/. */
function yamlFiles(dir = "k8s"): string[] {
  const files: string[] = [];
  for (const entry of Deno.readDirSync(repoPath(dir))) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) files.push(...yamlFiles(path));
    else if (/\.ya?ml$/.test(entry.name)) files.push(path);
  }
  return files.sort();
}

/**
 * The base's objects as written: its resources, plus the ConfigMaps its configMapGenerator makes (under
 * their plain names, as the Deployments refer to them).
 */
async function baseAsWritten(): Promise<Doc[]> {
  const [kustomization] = parseYaml(
    await readRepoFile("k8s/base/kustomization.yaml"),
    "k8s/base/kustomization.yaml",
  );
  const docs: Doc[] = [];
  for (const resource of list(kustomization!.resources).map(String)) {
    docs.push(...parseYaml(await readRepoFile(`k8s/base/${resource}`), resource));
  }
  for (const generator of list(kustomization!.configMapGenerator).map(obj)) {
    const data: Record<string, string> = {};
    for (const file of list(generator.files).map(String)) {
      data[file] = await readRepoFile(`k8s/base/${file}`);
    }
    docs.push({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: generator.name }, data });
  }
  return docs;
}

const facts = new Map<Service, BuildFacts>();
for (const service of SERVICES) facts.set(service, await buildFacts(service));
const factsOf = (service: Service) => facts.get(service)!;
const ports = Object.fromEntries(SERVICES.map((s) => [s, factsOf(s).port])) as Record<
  Service,
  number
>;
const maxBodyBytes = CommonEnv.shape.MAX_BODY_BYTES.parse(undefined);

/** The checks every layout must pass: the base as written, and each rendering. */
async function checkLayout(t: Deno.TestContext, docs: Doc[]): Promise<void> {
  await t.step(
    "each Deployment: probes, resources, security context, shutdown timing, mounts",
    () => {
      const problems: string[] = [];
      for (const service of SERVICES) {
        problems.push(...deploymentProblems(docs, service, factsOf(service)));
      }
      assert.deepStrictEqual(problems, []);
    },
  );
  await t.step(
    "the upload quarantine is one RWX PVC approval and publish share, and only they",
    () => {
      assert.deepStrictEqual(uploadQuarantineProblems(docs), []);
    },
  );
  await t.step("the gateway reaches metadata and publish through their Services", () => {
    assert.deepStrictEqual(serviceProblems(docs, ports), []);
  });
  await t.step(
    "the Ingress routes only to the gateway, with TLS and limits above the gateway's",
    () => {
      assert.deepStrictEqual(ingressProblems(docs, maxBodyBytes), []);
    },
  );
  await t.step("NetworkPolicies deny by default and allow only the expected paths", () => {
    assert.deepStrictEqual(networkPolicyProblems(docs), []);
  });
  await t.step("Prometheus may scrape /metrics on each service, with a bearer token", () => {
    assert.deepStrictEqual(metricsScrapeProblems(docs, ports), []);
  });
  await t.step(
    "every variable a Deployment sets is one its service reads and README documents",
    async () => {
      const documented = await readmeVariables();
      const problems: string[] = [];
      for (const service of SERVICES) {
        const deployment = deploymentOf(docs, service);
        if (deployment === undefined) continue;
        const container = containerOf(deployment, service);
        const literal = envOf(container);
        const names = envNamesOf(container);
        for (const name of names.filter((n) => literal[n] === undefined)) {
          problems.push(`${service}: ${name} has no literal value to check`);
        }
        for (const name of await unreadVariables(service, literal)) {
          problems.push(`${service}: sets ${name}, which the service does not read`);
        }
        for (const name of names.filter((n) => !documented.has(n))) {
          problems.push(`${service}: sets ${name}, which README.md's configuration table lacks`);
        }
      }
      assert.deepStrictEqual(problems, []);
    },
  );
  await t.step(
    "each service's secrets volume holds every secret it reads (when it names them)",
    () => {
      const problems: string[] = [];
      for (const service of SERVICES) {
        const files = mountedSecretFiles(docs, service);
        if (files === undefined) continue; // a Kubernetes Secret the operator creates (docs/deploy.md)
        for (const name of secretsNeeded(docs, service, factsOf(service))) {
          if (!files.includes(name)) problems.push(`${service}: no secret file ${name}`);
        }
      }
      assert.deepStrictEqual(problems, []);
    },
  );
}

Deno.test("k8s: every manifest and kustomization parses as YAML into Kubernetes objects", async () => {
  const files = yamlFiles();
  assert.ok(files.length >= 10, `expected the base and an overlay, found ${files.join(", ")}`);
  for (const file of files) {
    const docs = parseYaml(await readRepoFile(file), file);
    assert.ok(docs.length > 0, `${file} is empty`);
    for (const doc of docs) {
      assert.equal(typeof doc.apiVersion, "string", `${file}: an object has no apiVersion`);
      assert.equal(typeof doc.kind, "string", `${file}: an object has no kind`);
    }
  }
});

Deno.test("k8s/base as written: Deployments, Services, Ingress, NetworkPolicies", async (t) => {
  const docs = await baseAsWritten();
  for (const kind of ["Deployment", "Service", "ServiceAccount", "Ingress", "NetworkPolicy"]) {
    assert.ok(ofKind(docs, kind).length > 0, `no ${kind}`);
  }
  await checkLayout(t, docs);
  await t.step("every PVC a Deployment mounts is in the base", () => {
    const claims = new Set(ofKind(docs, "PersistentVolumeClaim").map(nameOf));
    for (const deployment of ofKind(docs, "Deployment")) {
      const spec = obj(obj(deployment.spec).template).spec;
      for (const volume of list(obj(spec).volumes).map(obj)) {
        const claim = obj(volume.persistentVolumeClaim).claimName;
        if (claim !== undefined) assert.ok(claims.has(String(claim)), `no PVC ${claim}`);
      }
    }
  });
  await t.step("service accounts do not mount tokens", () => {
    for (const account of ofKind(docs, "ServiceAccount")) {
      assert.equal(account.automountServiceAccountToken, false, nameOf(account));
    }
  });
});

Deno.test("k8s/base: publish runs two replicas on the shared run store, one on SQLite", async (t) => {
  const docs = await baseAsWritten();
  const deployment = deploymentOf(docs, "publish")!;
  const env = envOf(containerOf(deployment, "publish"));
  /** The base's objects with the publish Deployment (and its container's env) changed. */
  function variant(change: (spec: Doc, env: Doc[]) => void, others = docs): Doc[] {
    const copy = structuredClone(deployment);
    change(obj(copy.spec), containerOf(copy, "publish").env as Doc[]);
    return [...others.filter((d) => d !== deployment), copy];
  }
  const envOfVariant = (variantDocs: Doc[]) =>
    envOf(containerOf(deploymentOf(variantDocs, "publish")!, "publish"));

  await t.step(
    "as written: RUN_STORE=postgresql, two replicas, rolling, RWX filestores, a PDB",
    () => {
      assert.equal(env.RUN_STORE, "postgresql");
      assert.equal(obj(deployment.spec).replicas, 2);
      assert.equal(obj(obj(deployment.spec).strategy).type, "RollingUpdate");
      assert.deepStrictEqual(publishReplicaProblems(docs, deployment, env), []);
    },
  );

  await t.step("without its PodDisruptionBudget: a problem", () => {
    const without = docs.filter((d) => d.kind !== "PodDisruptionBudget");
    assert.deepStrictEqual(publishReplicaProblems(without, deployment, env), [
      "publish: 2 replicas but no PodDisruptionBudget selects them",
    ]);
  });

  await t.step("with a ReadWriteOnce staging volume: a problem", () => {
    const rwo = docs.map((d) =>
      nameOf(d) === "cr8tor-lsc-staging"
        ? { ...d, spec: { ...obj(d.spec), accessModes: ["ReadWriteOnce"] } }
        : d
    );
    assert.deepStrictEqual(publishReplicaProblems(rwo, deployment, env), [
      "publish: 2 replicas share /data/lsc/staging, but its PVC cr8tor-lsc-staging is not ReadWriteMany",
    ]);
  });

  await t.step("on SQLite (RUN_STORE unset): one replica, Recreate, STATE_DIR on a PVC", () => {
    const sqlite = variant((_spec, entries) => {
      entries.splice(entries.findIndex((e) => e.name === "RUN_STORE"), 1);
    });
    const sqliteDeployment = deploymentOf(sqlite, "publish")!;
    assert.deepStrictEqual(publishReplicaProblems(sqlite, sqliteDeployment, envOfVariant(sqlite)), [
      "publish: with the SQLite run store, publish must run exactly one replica",
      "publish: with the SQLite run store, publish must be replaced with Recreate",
      "publish: the SQLite run store (STATE_DIR) is not on a PVC",
    ]);
    const pinned = variant((spec, entries) => {
      entries.splice(entries.findIndex((e) => e.name === "RUN_STORE"), 1);
      entries.push({ name: "STATE_DIR", value: "/data/audit/state" });
      spec.replicas = 1;
      spec.strategy = { type: "Recreate" };
    });
    const pinnedDeployment = deploymentOf(pinned, "publish")!;
    assert.deepStrictEqual(
      publishReplicaProblems(pinned, pinnedDeployment, envOfVariant(pinned)),
      [],
    );
  });
});

Deno.test("k8s/base: a missing or unshared upload quarantine volume is a problem", async (t) => {
  const docs = await baseAsWritten();
  /** The base with one service's Deployment changed. */
  function changed(service: Service, change: (pod: Doc, container: Doc) => void): Doc[] {
    const deployment = deploymentOf(docs, service)!;
    const copy = structuredClone(deployment);
    const pod = obj(obj(obj(copy.spec).template).spec);
    change(pod, containerOf(copy, service));
    return [...docs.filter((d) => d !== deployment), copy];
  }
  const unmount = (_pod: Doc, container: Doc) => {
    container.volumeMounts = list(container.volumeMounts).filter((m) => obj(m).name !== "uploads");
  };
  await t.step("publish without the mount", () => {
    assert.deepStrictEqual(uploadQuarantineProblems(changed("publish", unmount)), [
      "publish: UPLOAD_QUARANTINE_PATH /data/uploads is not a PVC mount",
    ]);
  });
  await t.step("approval without the mount", () => {
    assert.deepStrictEqual(uploadQuarantineProblems(changed("approval", unmount)), [
      "approval: UPLOAD_QUARANTINE_PATH /data/uploads is not a PVC mount",
    ]);
  });
  await t.step("publish without the variable", () => {
    const unset = changed("publish", (_pod, container) => {
      container.env = list(container.env).filter((e) => obj(e).name !== "UPLOAD_QUARANTINE_PATH");
    });
    assert.deepStrictEqual(uploadQuarantineProblems(unset), [
      "publish: UPLOAD_QUARANTINE_PATH is not set",
    ]);
  });
  await t.step("publish on a staging PVC instead, read-only", () => {
    const other = changed("publish", (pod, container) => {
      pod.volumes = list(pod.volumes).map((v) =>
        obj(v).name === "uploads"
          ? { name: "uploads", persistentVolumeClaim: { claimName: "cr8tor-lsc-staging" } }
          : v
      );
      container.volumeMounts = list(container.volumeMounts).map((m) =>
        obj(m).name === "uploads" ? { ...obj(m), readOnly: true } : m
      );
    });
    assert.deepStrictEqual(uploadQuarantineProblems(other), [
      "publish: the upload quarantine is mounted read-only",
      "approval and publish mount different quarantine PVCs: cr8tor-lsc-staging,cr8tor-uploads",
    ]);
  });
  await t.step("a ReadWriteOnce PVC", () => {
    const rwo = docs.map((d) =>
      nameOf(d) === "cr8tor-uploads"
        ? { ...d, spec: { ...obj(d.spec), accessModes: ["ReadWriteOnce"] } }
        : d
    );
    assert.deepStrictEqual(uploadQuarantineProblems(rwo), [
      "approval: the upload quarantine's PVC cr8tor-uploads is not ReadWriteMany",
      "publish: the upload quarantine's PVC cr8tor-uploads is not ReadWriteMany",
    ]);
  });
  await t.step("metadata mounting it", () => {
    const leaked = changed("metadata", (pod) => {
      pod.volumes = [
        ...list(pod.volumes),
        { name: "uploads", persistentVolumeClaim: { claimName: "cr8tor-uploads" } },
      ];
    });
    assert.deepStrictEqual(uploadQuarantineProblems(leaked), [
      "cr8tor-metadata: mounts the upload quarantine's PVC cr8tor-uploads",
    ]);
  });
});

Deno.test({
  name: KUBECTL
    ? "k8s: kubectl kustomize renders the base and every overlay, and each rendering passes the checks"
    : "k8s: kubectl kustomize renders the base and every overlay (ignored: kubectl is not installed)",
  ignore: !KUBECTL,
  fn: async (t) => {
    for (const dir of ["k8s/base", ...OVERLAYS]) {
      await t.step(dir, async (t) => {
        const docs = await kustomize(dir);
        assert.ok(
          deploymentOf(docs, "publish") !== undefined,
          `${dir} renders no publish Deployment`,
        );
        await checkLayout(t, docs);
      });
    }
  },
});

Deno.test({
  name: KUBECTL
    ? "k8s/overlays/azure: Key Vault secrets, real addresses and images, Azure Files storage"
    : "k8s/overlays/azure: Key Vault secrets, addresses, images, storage (ignored: kubectl is not installed)",
  ignore: !KUBECTL,
  fn: async () => {
    const docs = await kustomize("k8s/overlays/azure");
    for (const service of SERVICES) {
      const files = mountedSecretFiles(docs, service);
      assert.ok(files !== undefined && files.length > 0, `${service}: secrets not from Key Vault`);
      const deployment = deploymentOf(docs, service)!;
      assert.ok(
        !JSON.stringify(containerOf(deployment, service).image).includes("example.org"),
        `${service}: placeholder image`,
      );
    }
    const placeholders = /\b(192\.0\.2|198\.51\.100|203\.0\.113)\./;
    for (const policy of ofKind(docs, "NetworkPolicy")) {
      assert.doesNotMatch(
        JSON.stringify(policy),
        placeholders,
        `${nameOf(policy)} keeps a placeholder`,
      );
    }
    for (const claim of ofKind(docs, "PersistentVolumeClaim")) {
      const storageClass = obj(claim.spec).storageClassName;
      assert.ok(find(docs, "StorageClass", String(storageClass)), `${nameOf(claim)}: no class`);
    }
    const publish = envOf(containerOf(deploymentOf(docs, "publish")!, "publish"));
    assert.doesNotMatch(publish.DESTINATION_POSTGRESQL_HOST ?? "", /example/);
    assert.doesNotMatch(publish.RUN_STORE_POSTGRESQL_HOST ?? "", /example/);
  },
});

/**
 * Checks of a set of Kubernetes objects (the base's files, or an overlay rendered by kustomize). Each
 * returns the problems it found as sentences, so a test lists all of them at once.
 *
 * @module
 */
import { posix } from "node:path";
import {
  allowListSecrets,
  type BuildFacts,
  cleanupSeconds,
  type Doc,
  graceSeconds,
  list,
  obj,
  secretNamesIn,
  type Service,
  SERVICES,
} from "./_deploy.ts";

/** The objects of one kind. */
export function ofKind(docs: Doc[], kind: string): Doc[] {
  return docs.filter((d) => d.kind === kind);
}

/** An object's name. */
export function nameOf(doc: Doc): string {
  return String(obj(doc.metadata).name ?? "");
}

/** The object of a kind and name, if any. */
export function find(docs: Doc[], kind: string, name: string): Doc | undefined {
  return docs.find((d) => d.kind === kind && nameOf(d) === name);
}

/** The Deployment of a service: the one whose pods carry `app.kubernetes.io/component: <service>`. */
export function deploymentOf(docs: Doc[], service: Service): Doc | undefined {
  return ofKind(docs, "Deployment").find((d) =>
    obj(obj(obj(obj(d.spec).template).metadata).labels)["app.kubernetes.io/component"] === service
  );
}

/** A Deployment's pod spec. */
export function podSpec(deployment: Doc): Doc {
  return obj(obj(obj(deployment.spec).template).spec);
}

/** The service's container: the one named after it. */
export function containerOf(deployment: Doc, service: Service): Doc {
  return obj(list(podSpec(deployment).containers).find((c) => obj(c).name === service));
}

/** A container's literal environment (`value:` entries). */
export function envOf(container: Doc): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of list(container.env).map(obj)) {
    if (typeof entry.value === "string") env[String(entry.name)] = entry.value;
  }
  return env;
}

/** The names of a container's environment entries, with or without a literal value. */
export function envNamesOf(container: Doc): string[] {
  return list(container.env).map((e) => String(obj(e).name));
}

/** A container port by name or number, as a number. */
function resolvePort(container: Doc, port: unknown): number | undefined {
  if (typeof port === "number") return port;
  const named = list(container.ports).map(obj).find((p) => p.name === port);
  return typeof named?.containerPort === "number" ? named.containerPort : undefined;
}

/** Kubernetes quantities as numbers (cores, bytes), enough to compare requests with limits. */
export function quantity(value: unknown): number {
  const text = String(value);
  const match = /^([0-9.]+)([a-zA-Z]*)$/.exec(text);
  if (match === null) return NaN;
  const units: Record<string, number> = {
    "": 1,
    m: 1e-3,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    Ki: 1024,
    Mi: 1024 ** 2,
    Gi: 1024 ** 3,
  };
  const unit = units[match[2]!];
  return unit === undefined ? NaN : Number(match[1]) * unit;
}

/** Where a path is mounted in a container, and from which pod volume. */
function mountFor(
  deployment: Doc,
  container: Doc,
  path: string,
): { mount: Doc; volume: Doc } | undefined {
  const mounts = list(container.volumeMounts).map(obj)
    .filter((m) => path === m.mountPath || path.startsWith(`${m.mountPath}/`))
    .sort((a, b) => String(b.mountPath).length - String(a.mountPath).length);
  const mount = mounts[0];
  if (mount === undefined) return undefined;
  const volume = obj(list(podSpec(deployment).volumes).find((v) => obj(v).name === mount.name));
  return { mount, volume };
}

/** The seconds a preStop `sleep N` waits (0 without one). */
function preStopSeconds(container: Doc): number {
  const command = list(obj(obj(obj(container.lifecycle).preStop).exec).command).map(String);
  if (command[0] === "sleep") return Number(command[1]);
  const sleep = obj(obj(obj(container.lifecycle).preStop).sleep).seconds;
  return typeof sleep === "number" ? sleep : 0;
}

/** Probes, resources, security context, shutdown timing, mounts: what every Deployment must have. */
export function deploymentProblems(
  docs: Doc[],
  service: Service,
  facts: BuildFacts,
): string[] {
  const problems: string[] = [];
  const say = (text: string) => problems.push(`${service}: ${text}`);
  const deployment = deploymentOf(docs, service);
  if (deployment === undefined) return [`${service}: no Deployment`];
  const pod = podSpec(deployment);
  const container = containerOf(deployment, service);
  if (Object.keys(container).length === 0) return [`${service}: no container named ${service}`];
  if (list(pod.containers).length !== 1) say("more than one container");
  const env = envOf(container);
  const port = env.PORT === undefined ? facts.port : Number(env.PORT);
  const http = resolvePort(container, "http");
  if (http !== port) say(`container port "http" is ${http}, the service listens on ${port}`);

  for (const [probe, path] of [["livenessProbe", "/health"], ["readinessProbe", "/ready"]]) {
    const get = obj(obj(container[probe!]).httpGet);
    if (get.path !== path) say(`${probe} must GET ${path}, not ${String(get.path)}`);
    if (resolvePort(container, get.port) !== port) say(`${probe} is not on port ${port}`);
  }
  const startup = obj(obj(container.startupProbe).httpGet);
  if (Object.keys(startup).length > 0 && startup.path !== "/health") {
    say("startupProbe must GET /health");
  }

  const resources = obj(container.resources);
  for (const what of ["cpu", "memory"]) {
    const request = quantity(obj(resources.requests)[what]);
    const limit = quantity(obj(resources.limits)[what]);
    if (Number.isNaN(request)) say(`no ${what} request`);
    if (Number.isNaN(limit)) say(`no ${what} limit`);
    if (request > limit) say(`${what} request above its limit`);
  }

  const podSecurity = obj(pod.securityContext);
  const security = obj(container.securityContext);
  if (podSecurity.runAsNonRoot !== true && security.runAsNonRoot !== true) {
    say("runAsNonRoot unset");
  }
  if (podSecurity.runAsUser === 0 || security.runAsUser === 0) say("runs as uid 0");
  const seccomp = obj(security.seccompProfile).type ?? obj(podSecurity.seccompProfile).type;
  if (seccomp !== "RuntimeDefault") say("seccompProfile is not RuntimeDefault");
  if (security.allowPrivilegeEscalation !== false) say("allowPrivilegeEscalation is not false");
  if (security.readOnlyRootFilesystem !== true) say("root filesystem is not read-only");
  if (security.privileged === true) say("privileged");
  if (!list(obj(security.capabilities).drop).includes("ALL")) say("capabilities not dropped");
  if (list(obj(security.capabilities).add).length > 0) say("adds capabilities");
  if (pod.automountServiceAccountToken !== false) say("mounts a service account token");
  if (pod.hostNetwork === true || pod.hostPID === true) say("uses the host's namespaces");
  const tmp = mountFor(deployment, container, "/tmp/x");
  if (tmp === undefined || tmp.volume.emptyDir === undefined) say("no emptyDir on /tmp");

  const needed = preStopSeconds(container) + graceSeconds(env) + cleanupSeconds();
  const termination = Number(pod.terminationGracePeriodSeconds ?? 30);
  if (termination < needed) {
    say(`terminationGracePeriodSeconds ${termination} < preStop + grace + cleanup = ${needed}`);
  }

  const secrets = env.SECRETS_MNT_PATH ?? "/run/secrets";
  const secretMount = mountFor(deployment, container, `${secrets}/x`);
  if (secretMount === undefined || secretMount.mount.mountPath !== secrets) {
    say(`nothing mounted at SECRETS_MNT_PATH ${secrets}`);
  } else {
    if (secretMount.mount.readOnly !== true) say("secrets are mounted writable");
    if (secretMount.volume.secret === undefined && secretMount.volume.csi === undefined) {
      say("secrets do not come from a Secret or the CSI driver");
    }
  }
  if (env.AUDIT_LOG_PATH !== undefined) {
    const audit = mountFor(deployment, container, env.AUDIT_LOG_PATH);
    if (audit?.volume.persistentVolumeClaim === undefined) say("the audit trail is not on a PVC");
  }
  if (env.ALLOWED_SOURCES_FILE !== undefined && allowListOf(docs, service) === undefined) {
    say(`ALLOWED_SOURCES_FILE ${env.ALLOWED_SOURCES_FILE} is not a key of a mounted ConfigMap`);
  }

  if (service === "publish") {
    problems.push(...publishReplicaProblems(docs, deployment, env));
    const claims = new Set(ofKind(docs, "PersistentVolumeClaim").map(nameOf));
    for (const [name, base] of Object.entries(env)) {
      if (!/^TARGET_STORAGE_ACCOUNT_.+_SDE_MNT_PATH$/.test(name)) continue;
      for (const area of ["staging", "production"]) {
        const found = mountFor(deployment, container, `${base}/${area}/x`);
        const claim = found?.volume.persistentVolumeClaim;
        if (
          found === undefined || found.mount.mountPath !== `${base}/${area}` || claim === undefined
        ) {
          say(`${name}: ${base}/${area} is not a PVC mount`);
        } else if (!claims.has(String(obj(claim).claimName))) {
          say(`${name}: PVC ${String(obj(claim).claimName)} does not exist`);
        }
      }
    }
  }
  return problems;
}

/**
 * How many publish replicas the run store allows. With SQLite (the default; a file under `STATE_DIR`)
 * exactly one, replaced with `Recreate`, its state on a PVC. With the shared PostgreSQL store several,
 * which then need every filestore volume they mount to be ReadWriteMany and a PodDisruptionBudget.
 */
export function publishReplicaProblems(
  docs: Doc[],
  deployment: Doc,
  env: Record<string, string>,
): string[] {
  const problems: string[] = [];
  const say = (problem: string) => problems.push(`publish: ${problem}`);
  const spec = obj(deployment.spec);
  const replicas = Number(spec.replicas ?? 1);
  const container = containerOf(deployment, "publish");
  if ((env.RUN_STORE ?? "sqlite") === "sqlite") {
    if (replicas !== 1) say("with the SQLite run store, publish must run exactly one replica");
    if (obj(spec.strategy).type !== "Recreate") {
      say("with the SQLite run store, publish must be replaced with Recreate");
    }
    const state = mountFor(deployment, container, `${env.STATE_DIR ?? "./state"}/runs.sqlite`);
    if (state?.volume.persistentVolumeClaim === undefined) {
      say("the SQLite run store (STATE_DIR) is not on a PVC");
    }
    return problems;
  }
  if (replicas < 2) return problems;
  const filestores = Object.entries(env)
    .filter(([name]) => /^TARGET_STORAGE_ACCOUNT_.+_SDE_MNT_PATH$/.test(name))
    .flatMap(([, base]) => [`${base}/staging`, `${base}/production`]);
  for (const path of filestores) {
    const claim = obj(mountFor(deployment, container, `${path}/x`)?.volume.persistentVolumeClaim);
    const modes = list(
      obj(find(docs, "PersistentVolumeClaim", String(claim.claimName))?.spec).accessModes,
    );
    if (!modes.includes("ReadWriteMany")) {
      say(
        `${replicas} replicas share ${path}, but its PVC ${claim.claimName} is not ReadWriteMany`,
      );
    }
  }
  const labels = obj(obj(obj(spec.template).metadata).labels);
  const budget = ofKind(docs, "PodDisruptionBudget").find((b) => {
    const selector = obj(obj(obj(b.spec).selector).matchLabels);
    return Object.keys(selector).length > 0 &&
      Object.entries(selector).every(([k, v]) => labels[k] === v);
  });
  if (budget === undefined) say(`${replicas} replicas but no PodDisruptionBudget selects them`);
  return problems;
}

/**
 * The upload quarantine (`UPLOAD_QUARANTINE_PATH`, docs/uploads.md): approval (which writes it) and
 * publish (which stages approved files from it) both set it, each with a writable mount of one and the
 * same ReadWriteMany PVC exactly at that path (each service makes it owner-only at start), and no
 * other Deployment mounts that PVC.
 */
export function uploadQuarantineProblems(docs: Doc[]): string[] {
  const problems: string[] = [];
  const claims = new Set<string>();
  for (const service of ["approval", "publish"] as const) {
    const deployment = deploymentOf(docs, service);
    if (deployment === undefined) continue;
    const container = containerOf(deployment, service);
    const path = envOf(container).UPLOAD_QUARANTINE_PATH;
    if (path === undefined) {
      problems.push(`${service}: UPLOAD_QUARANTINE_PATH is not set`);
      continue;
    }
    const found = mountFor(deployment, container, `${path}/x`);
    const claim = found?.volume.persistentVolumeClaim;
    if (found === undefined || found.mount.mountPath !== path || claim === undefined) {
      problems.push(`${service}: UPLOAD_QUARANTINE_PATH ${path} is not a PVC mount`);
      continue;
    }
    if (found.mount.readOnly === true) {
      problems.push(`${service}: the upload quarantine is mounted read-only`);
    }
    if (found.mount.subPath !== undefined) {
      problems.push(`${service}: the upload quarantine is a subPath of another volume`);
    }
    const name = String(obj(claim).claimName);
    const pvc = find(docs, "PersistentVolumeClaim", name);
    if (pvc === undefined) problems.push(`${service}: PVC ${name} does not exist`);
    else if (!list(obj(pvc.spec).accessModes).includes("ReadWriteMany")) {
      problems.push(`${service}: the upload quarantine's PVC ${name} is not ReadWriteMany`);
    }
    claims.add(name);
  }
  if (claims.size > 1) {
    problems.push(`approval and publish mount different quarantine PVCs: ${[...claims].sort()}`);
  }
  const sharing = new Set([deploymentOf(docs, "approval"), deploymentOf(docs, "publish")]);
  for (const deployment of ofKind(docs, "Deployment").filter((d) => !sharing.has(d))) {
    for (const volume of list(podSpec(deployment).volumes).map(obj)) {
      const claim = obj(volume.persistentVolumeClaim).claimName;
      if (claim !== undefined && claims.has(String(claim))) {
        problems.push(
          `${nameOf(deployment)}: mounts the upload quarantine's PVC ${String(claim)}`,
        );
      }
    }
  }
  return problems;
}

/** The allow-list text a service's Deployment mounts at `ALLOWED_SOURCES_FILE`, if any. */
export function allowListOf(docs: Doc[], service: Service): string | undefined {
  const deployment = deploymentOf(docs, service);
  if (deployment === undefined) return undefined;
  const container = containerOf(deployment, service);
  const path = envOf(container).ALLOWED_SOURCES_FILE;
  if (path === undefined) return undefined;
  const found = mountFor(deployment, container, path);
  const configMap = obj(found?.volume.configMap);
  if (found === undefined || configMap.name === undefined) return undefined;
  const key = posix.relative(String(found.mount.mountPath), path);
  const data = obj(find(docs, "ConfigMap", String(configMap.name))?.data)[key];
  return typeof data === "string" ? data : undefined;
}

/** The gateway reaches the other two by Service name and port, and those Services select them. */
export function serviceProblems(docs: Doc[], ports: Record<Service, number>): string[] {
  const problems: string[] = [];
  const approval = deploymentOf(docs, "approval");
  if (approval === undefined) return ["approval: no Deployment"];
  const env = envOf(containerOf(approval, "approval"));
  for (const target of ["metadata", "publish"] as const) {
    const prefix = target.toUpperCase();
    const name = env[`${prefix}_CONTAINER_NAME`];
    const port = Number(env[`${prefix}_CONTAINER_PORT`]);
    const service = find(docs, "Service", String(name));
    if (service === undefined) {
      problems.push(`approval: ${prefix}_CONTAINER_NAME ${name} is not a Service`);
      continue;
    }
    const servicePort = list(obj(service.spec).ports).map(obj).find((p) => p.port === port);
    if (servicePort === undefined) problems.push(`Service ${name} has no port ${port}`);
    const deployment = deploymentOf(docs, target);
    if (deployment === undefined) continue;
    const labels = obj(obj(obj(deployment.spec).template).metadata).labels;
    const selector = obj(obj(service.spec).selector);
    if (!Object.entries(selector).every(([k, v]) => obj(labels)[k] === v)) {
      problems.push(`Service ${name} does not select the ${target} pods`);
    }
    const container = containerOf(deployment, target);
    const listens = Number(envOf(container).PORT ?? ports[target]);
    if (servicePort !== undefined && resolvePort(container, servicePort.targetPort) !== listens) {
      problems.push(`Service ${name} does not target port ${listens}`);
    }
  }
  return problems;
}

/** Only the gateway is behind the Ingress, with limits that fit the gateway's. */
export function ingressProblems(docs: Doc[], maxBodyBytes: number): string[] {
  const problems: string[] = [];
  const ingresses = ofKind(docs, "Ingress");
  if (ingresses.length === 0) return ["no Ingress"];
  const approval = deploymentOf(docs, "approval");
  const env = approval === undefined ? {} : envOf(containerOf(approval, "approval"));
  for (const ingress of ingresses) {
    const spec = obj(ingress.spec);
    const backends = [
      obj(spec.defaultBackend),
      ...list(spec.rules).flatMap((r) =>
        list(obj(obj(r).http).paths).map((p) => obj(obj(p).backend))
      ),
    ].filter((b) => Object.keys(b).length > 0);
    for (const backend of backends) {
      const name = obj(backend.service).name;
      if (name !== "cr8tor-approval") problems.push(`Ingress ${nameOf(ingress)} routes to ${name}`);
    }
    if (list(spec.tls).length === 0) problems.push(`Ingress ${nameOf(ingress)} has no TLS`);
    const annotations = obj(obj(ingress.metadata).annotations);
    const timeout = Number(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"] ?? 60);
    const waits = Number(env.SUBSERVICE_TIMEOUT_SECONDS ?? 3600);
    if (timeout <= waits) {
      problems.push(`proxy-read-timeout ${timeout} s does not outlast the gateway's ${waits} s`);
    }
    const body = quantity(
      String(annotations["nginx.ingress.kubernetes.io/proxy-body-size"] ?? "1m").replace(/m$/, "M"),
    );
    if (body < maxBodyBytes) {
      problems.push(`proxy-body-size ${body} < MAX_BODY_BYTES ${maxBodyBytes}`);
    }
  }
  return problems;
}

/** The labels of a service's pods. */
function podLabels(docs: Doc[], service: Service): Doc {
  const deployment = deploymentOf(docs, service);
  return deployment === undefined
    ? {}
    : obj(obj(obj(obj(deployment.spec).template).metadata).labels);
}

/** Whether a label selector (matchLabels, matchExpressions In) selects these labels. */
function selects(selector: Doc, labels: Doc): boolean {
  const matchLabels = Object.entries(obj(selector.matchLabels)).every(([k, v]) => labels[k] === v);
  const expressions = list(selector.matchExpressions).map(obj).every((e) =>
    e.operator === "In" ? list(e.values).includes(labels[String(e.key)]) : false
  );
  return matchLabels && expressions;
}

/**
 * Default deny, then: only the gateway takes traffic from outside the namespace (from the ingress
 * controller), metadata and publish only from the gateway and from the metrics scraper (pods chosen by
 * both a namespace and a pod selector, on the service's port only); only metadata and publish reach
 * addresses outside the cluster.
 */
export function networkPolicyProblems(docs: Doc[]): string[] {
  const problems: string[] = [];
  const policies = ofKind(docs, "NetworkPolicy");
  const denyAll = policies.find((p) => {
    const spec = obj(p.spec);
    const types = list(spec.policyTypes);
    return Object.keys(obj(spec.podSelector)).length === 0 && types.includes("Ingress") &&
      types.includes("Egress") && list(spec.ingress).length === 0 && list(spec.egress).length === 0;
  });
  if (denyAll === undefined) problems.push("no NetworkPolicy denies all ingress and egress");
  const labels = Object.fromEntries(SERVICES.map((s) => [s, podLabels(docs, s)])) as Record<
    Service,
    Doc
  >;
  const isPod = (peer: Doc, service: Service) =>
    peer.namespaceSelector === undefined && peer.ipBlock === undefined &&
    selects(obj(peer.podSelector), labels[service]);
  /** Named pods of a named namespace: the scraper, not a whole namespace or address range. */
  const isScraper = (peer: Doc) =>
    peer.ipBlock === undefined && Object.keys(obj(peer.namespaceSelector)).length > 0 &&
    Object.keys(obj(peer.podSelector)).length > 0;
  for (const policy of policies) {
    const spec = obj(policy.spec);
    const selected = SERVICES.filter((s) => selects(obj(spec.podSelector), labels[s]));
    for (const rule of list(spec.ingress).map(obj)) {
      const peers = list(rule.from).map(obj);
      if (peers.length === 0) problems.push(`${nameOf(policy)} allows ingress from anywhere`);
      for (const service of selected) {
        for (const peer of peers) {
          const ok = service === "approval"
            ? peer.namespaceSelector !== undefined && peer.ipBlock === undefined
            : isPod(peer, "approval") || isScraper(peer);
          if (!ok) {
            problems.push(
              `${nameOf(policy)} lets ${service} take traffic from ${JSON.stringify(peer)}`,
            );
          }
        }
      }
    }
    for (const rule of list(spec.egress).map(obj)) {
      const peers = list(rule.to).map(obj);
      if (peers.length === 0) problems.push(`${nameOf(policy)} allows egress to anywhere`);
      for (const peer of peers.filter((p) => p.ipBlock !== undefined)) {
        if (selected.includes("approval")) {
          problems.push(`${nameOf(policy)} lets the gateway reach ${JSON.stringify(peer.ipBlock)}`);
        }
        if (String(obj(peer.ipBlock).cidr).endsWith("/0")) {
          problems.push(`${nameOf(policy)} allows egress to ${String(obj(peer.ipBlock).cidr)}`);
        }
      }
    }
  }
  return problems;
}

/** The files a service's secrets volume provides, when they are known (a SecretProviderClass). */
export function mountedSecretFiles(docs: Doc[], service: Service): string[] | undefined {
  const deployment = deploymentOf(docs, service);
  if (deployment === undefined) return undefined;
  const volume = list(podSpec(deployment).volumes).map(obj).find((v) => v.name === "secrets");
  const providerClass = obj(obj(obj(volume).csi).volumeAttributes).secretProviderClass;
  if (providerClass === undefined) return undefined;
  const spc = find(docs, "SecretProviderClass", String(providerClass));
  if (spc === undefined) return [];
  const objects = String(obj(obj(spc.spec).parameters).objects ?? "");
  const files: string[] = [];
  for (const block of objects.split(/^\s*- \|/m).slice(1)) {
    const alias = /objectAlias:\s*(\S+)/.exec(block)?.[1];
    const name = /objectName:\s*(\S+)/.exec(block)?.[1];
    if (alias ?? name) files.push((alias ?? name)!);
  }
  return files.sort();
}

/** The secrets a service reads: its API keys, the allow-list's credentials, `*_SECRET_NAME` values. */
export function secretsNeeded(docs: Doc[], service: Service, facts: BuildFacts): string[] {
  const deployment = deploymentOf(docs, service);
  const env = deployment === undefined ? {} : envOf(containerOf(deployment, service));
  const allowList = allowListOf(docs, service);
  return [
    ...new Set([
      ...facts.apiKeys,
      ...(allowList === undefined ? [] : allowListSecrets(allowList)),
      ...secretNamesIn(env),
    ]),
  ].sort();
}

/**
 * Each service's pods carry the `prometheus.io/*` scrape annotations for `/metrics` on the port it
 * listens on, its environment names the bearer token Prometheus sends, and a NetworkPolicy lets the
 * scraper (named pods in a named namespace) reach that port.
 */
export function metricsScrapeProblems(docs: Doc[], ports: Record<Service, number>): string[] {
  const problems: string[] = [];
  for (const service of SERVICES) {
    const deployment = deploymentOf(docs, service);
    if (deployment === undefined) continue;
    const template = obj(obj(deployment.spec).template);
    const annotations = obj(obj(template.metadata).annotations);
    const container = containerOf(deployment, service);
    const port = Number(envOf(container).PORT ?? ports[service]);
    const say = (text: string) => problems.push(`${service}: ${text}`);
    if (annotations["prometheus.io/scrape"] !== "true") say('no prometheus.io/scrape: "true"');
    if (annotations["prometheus.io/path"] !== "/metrics") say("prometheus.io/path is not /metrics");
    if (Number(annotations["prometheus.io/port"]) !== port) {
      say(`prometheus.io/port is not ${port}, the port it listens on`);
    }
    const env = envOf(container);
    if (env.METRICS_PUBLIC === "true") say("METRICS_PUBLIC=true, behind the Ingress or not");
    if ((env.METRICS_BEARER_TOKEN_SECRET_NAME ?? "") === "") {
      say("no METRICS_BEARER_TOKEN_SECRET_NAME: Prometheus could not scrape without the API key");
    }
    const labels = obj(template.metadata).labels;
    const scraped = ofKind(docs, "NetworkPolicy").some((policy) => {
      const spec = obj(policy.spec);
      if (!selects(obj(spec.podSelector), obj(labels))) return false;
      return list(spec.ingress).map(obj).some((rule) =>
        list(rule.from).map(obj).some((peer) =>
          peer.ipBlock === undefined && Object.keys(obj(peer.namespaceSelector)).length > 0 &&
          Object.keys(obj(peer.podSelector)).length > 0
        ) && list(rule.ports).map(obj).some((p) => Number(p.port) === port)
      );
    });
    if (!scraped) say(`no NetworkPolicy lets a scraper reach port ${port}`);
  }
  return problems;
}

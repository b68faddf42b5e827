/**
 * `GET /metrics` of each service as its composition root builds it (`buildXService(env)`), answered
 * without listening: requests counted by route pattern, source connection failures counted by engine
 * and code (a refused connection to a closed local port), nothing the requests named in any label.
 */
import assert from "node:assert/strict";
import { buildApprovalService } from "../approval/main.ts";
import { buildMetadataService } from "../metadata/main.ts";
import { buildPublishService } from "../publish/main.ts";
import { aTransferRequest, postJson } from "../../tests/support/requests.ts";
import { LOCAL_DATABASES_WITHOUT_TLS } from "../../tests/support/services.ts";
import { type Family, parsePrometheusText, valueOf } from "../../tests/support/prometheus_text.ts";
import type { RunnableService } from "./serve.ts";

const KEYS = {
  approvalserviceapikey: "approval-key-0123456789",
  metadataserviceapikey: "metadata-key-0123456789",
  publishserviceapikey: "publish-key-0123456789",
};
const TOKEN = "scrape-token-0123456789-0123456789";
const PROJECT = "Prmetricsprobe";

/** A port on 127.0.0.1 that nothing listens on (it was free a moment ago). */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** A temporary directory with the secrets, the allow-list, a filestore and an audit file. */
async function aDeployment(pgPort: number, mysqlPort: number) {
  const root = await Deno.makeTempDir({ prefix: "cr8tor_metrics_" });
  const secrets = `${root}/secrets`;
  await Deno.mkdir(secrets);
  const values = { ...KEYS, metricstoken: TOKEN, srcuser: "reader", srcpassword: "hunter2hunter2" };
  for (const [name, value] of Object.entries(values)) {
    await Deno.writeTextFile(`${secrets}/${name}`, value);
  }
  const credentials = [{ username: "srcuser", password: "srcpassword" }];
  await Deno.writeTextFile(
    `${root}/allowed.json`,
    JSON.stringify({
      sources: [
        { type: "postgresql", host: "127.0.0.1", port: pgPort, database: "research", credentials },
        { type: "mysql", host: "127.0.0.1", port: mysqlPort, database: "oncology", credentials },
      ],
    }),
  );
  await Deno.mkdir(`${root}/lsc`);
  return {
    root,
    env: {
      ...LOCAL_DATABASES_WITHOUT_TLS,
      SECRETS_MNT_PATH: secrets,
      STATE_DIR: `${root}/state`,
      ALLOWED_SOURCES_FILE: `${root}/allowed.json`,
      SOURCE_CONNECT_TIMEOUT_SECONDS: "5",
      TARGET_STORAGE_ACCOUNT_LSC_SDE_MNT_PATH: `${root}/lsc`,
      METADATA_CONTAINER_NAME: "127.0.0.1",
      METADATA_CONTAINER_PORT: String(closedPort()),
      PUBLISH_CONTAINER_NAME: "127.0.0.1",
      PUBLISH_CONTAINER_PORT: String(closedPort()),
      SUBSERVICE_TIMEOUT_SECONDS: "5",
      METRICS_BEARER_TOKEN_SECRET_NAME: "metricstoken",
    } as Record<string, string>,
  };
}

/** A transfer request reading `type` at the closed port. */
function aRequestTo(type: "postgresql" | "mysql", port: number) {
  return aTransferRequest({
    project_name: PROJECT,
    source: {
      type,
      host_url: "127.0.0.1",
      port,
      // A MySQL database is its schema: the request's dataset reads schema "oncology".
      database: type === "mysql" ? "oncology" : "research",
      credentials: {
        provider: "AzureKeyVault",
        username_key: "srcuser",
        password_key: "srcpassword",
      },
    },
  });
}

/** Scrapes a service with the bearer token, as Prometheus would, and parses the reply strictly. */
async function scrape(service: RunnableService): Promise<Map<string, Family>> {
  const res = await service.fetch(
    new Request("http://svc.local/metrics", { headers: { authorization: `Bearer ${TOKEN}` } }),
  );
  assert.equal(res.status, 200);
  return parsePrometheusText(await res.text());
}

/** Fails when any label value holds one of `forbidden`. */
function assertNoLabelHolds(families: Map<string, Family>, forbidden: readonly string[]): void {
  for (const family of families.values()) {
    for (const sample of family.samples) {
      for (const [label, value] of Object.entries(sample.labels)) {
        for (const text of forbidden) {
          assert.ok(!value.includes(text), `${sample.name} ${label}="${value}" holds "${text}"`);
        }
      }
    }
  }
}

Deno.test("every service serves /metrics from its composition root", async (t) => {
  const pgPort = closedPort();
  const mysqlPort = closedPort();
  const { root, env } = await aDeployment(pgPort, mysqlPort);
  const quiet = () => {};
  const forbidden = [
    PROJECT,
    "127.0.0.1",
    String(pgPort),
    String(mysqlPort),
    "research",
    "oncology",
    "reader",
  ];
  try {
    await t.step("metadata counts a refused PostgreSQL connection", async () => {
      const service = await buildMetadataService(env, quiet);
      try {
        const res = await service.fetch(
          postJson(
            "/metadata/project",
            aRequestTo("postgresql", pgPort),
            KEYS.metadataserviceapikey,
          ),
        );
        assert.equal(res.status, 502);
        assert.equal((await res.json()).payload.code, "source_connection_failed");
        const families = await scrape(service);
        assert.equal(
          valueOf(families, "cr8tor_source_connection_failures_total", {
            service: "metadata",
            engine: "postgresql",
            code: "source_connection_failed",
          }),
          1,
        );
        assert.equal(
          valueOf(families, "cr8tor_http_requests_total", {
            method: "POST",
            route: "/metadata/project",
            status: "502",
          }),
          1,
        );
        assert.ok(valueOf(families, "cr8tor_process_cpu_seconds_total") > 0);
        assertNoLabelHolds(families, forbidden);
      } finally {
        await service.close?.();
      }
    });

    await t.step("publish counts a refused MySQL connection", async () => {
      const service = await buildPublishService(env, quiet);
      try {
        const res = await service.fetch(
          postJson(
            "/data-publish/package",
            aRequestTo("mysql", mysqlPort),
            KEYS.publishserviceapikey,
          ),
        );
        assert.equal(res.status, 502, await res.clone().text());
        const families = await scrape(service);
        assert.equal(
          valueOf(families, "cr8tor_source_connection_failures_total", {
            service: "publish",
            engine: "mysql",
            code: "source_connection_failed",
          }),
          1,
        );
        assert.equal(
          valueOf(families, "cr8tor_http_requests_total", {
            route: "/data-publish/package",
            status: "502",
          }),
          1,
        );
        assertNoLabelHolds(families, forbidden);
      } finally {
        await service.close?.();
      }
    });

    await t.step("approval counts its requests, the sub-service failures included", async () => {
      const service = await buildApprovalService(env, quiet);
      try {
        const validate = await service.fetch(
          postJson(
            "/project/validate",
            aRequestTo("postgresql", pgPort),
            KEYS.approvalserviceapikey,
          ),
        );
        assert.equal(validate.status, 502);
        await validate.body?.cancel();
        const missing = await service.fetch(
          new Request(`http://svc.local/no-such-route/${PROJECT}`),
        );
        assert.equal(missing.status, 403);
        await missing.body?.cancel();
        const families = await scrape(service);
        assert.equal(
          valueOf(families, "cr8tor_http_requests_total", {
            service: "approval",
            method: "POST",
            route: "/project/validate",
            status: "502",
          }),
          1,
        );
        assert.equal(
          valueOf(families, "cr8tor_http_requests_total", { route: "unmatched", status: "403" }),
          1,
        );
        assert.equal(valueOf(families, "cr8tor_source_connection_failures_total"), 0);
        assertNoLabelHolds(families, forbidden);
        const refused = await service.fetch(new Request("http://svc.local/metrics"));
        assert.equal(refused.status, 403);
        await refused.body?.cancel();
      } finally {
        await service.close?.();
      }
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

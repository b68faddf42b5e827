import assert from "node:assert/strict";
import { parsePrometheusText, samplesOf, valueOf } from "../../tests/support/prometheus_text.ts";
import { PrometheusMetrics } from "./prometheus_metrics.ts";

async function parsed(metrics: PrometheusMetrics) {
  return parsePrometheusText(await metrics.render());
}

Deno.test("PrometheusMetrics.runChanged() counts states, runs in flight and final durations", async () => {
  const metrics = new PrometheusMetrics({ service: "publish", processMetrics: false });
  metrics.runChanged("package", null, "queued", null);
  metrics.runChanged("package", "queued", "running", null);
  metrics.runChanged("package", null, "running", null);
  metrics.runChanged("publish", null, "queued", null);
  let families = await parsed(metrics);
  assert.equal(valueOf(families, "cr8tor_runs_in_flight", { action: "package" }), 2);
  assert.equal(valueOf(families, "cr8tor_runs_in_flight", { action: "publish" }), 1);

  metrics.runChanged("package", "running", "succeeded", 12.5);
  metrics.runChanged("package", "running", "interrupted", 3);
  metrics.runChanged("publish", "queued", "cancelled", 0.5);
  families = await parsed(metrics);
  assert.equal(valueOf(families, "cr8tor_runs_total", { action: "package", state: "queued" }), 1);
  assert.equal(valueOf(families, "cr8tor_runs_total", { action: "package", state: "running" }), 2);
  assert.equal(
    valueOf(families, "cr8tor_runs_total", { action: "package", state: "succeeded" }),
    1,
  );
  assert.equal(valueOf(families, "cr8tor_runs_in_flight", { action: "package" }), 0);
  assert.equal(valueOf(families, "cr8tor_runs_in_flight", { action: "publish" }), 0);
  assert.equal(
    valueOf(families, "cr8tor_run_duration_seconds_sum", { action: "package", state: "succeeded" }),
    12.5,
  );
  assert.equal(
    valueOf(families, "cr8tor_run_duration_seconds_count", { action: "package" }),
    2,
  );
  assert.equal(
    valueOf(families, "cr8tor_run_duration_seconds_count", {
      action: "publish",
      state: "cancelled",
    }),
    1,
  );
  // Every metric carries the service.
  for (const family of families.values()) {
    for (const sample of family.samples) assert.equal(sample.labels.service, "publish");
  }
});

Deno.test("PrometheusMetrics.tableTransferred() adds rows (when counted) and bytes", async () => {
  const metrics = new PrometheusMetrics({ service: "publish", processMetrics: false });
  metrics.tableTransferred("postgresql", "filestore", 100, 2048);
  metrics.tableTransferred("postgresql", "filestore", 5, 100);
  metrics.tableTransferred("mysql", "postgresql", null, 512);
  const families = await parsed(metrics);
  const pgFiles = { source_engine: "postgresql", destination: "filestore" };
  const mysqlPg = { source_engine: "mysql", destination: "postgresql" };
  assert.equal(valueOf(families, "cr8tor_rows_total", pgFiles), 105);
  assert.equal(valueOf(families, "cr8tor_bytes_total", pgFiles), 2148);
  assert.equal(samplesOf(families, "cr8tor_rows_total", mysqlPg).length, 0);
  assert.equal(valueOf(families, "cr8tor_bytes_total", mysqlPg), 512);
});

Deno.test("PrometheusMetrics.requestAnswered() folds unknown methods and observes durations", async () => {
  const metrics = new PrometheusMetrics({ service: "approval", processMetrics: false });
  metrics.requestAnswered({ method: "GET", route: "/runs/:id", status: 200, seconds: 0.02 });
  metrics.requestAnswered({ method: "get", route: "/runs/:id", status: 200, seconds: 0.03 });
  metrics.requestAnswered({ method: "BREW", route: "unmatched", status: 404, seconds: 0.001 });
  const families = await parsed(metrics);
  assert.equal(
    valueOf(families, "cr8tor_http_requests_total", {
      method: "GET",
      route: "/runs/:id",
      status: "200",
    }),
    2,
  );
  assert.equal(valueOf(families, "cr8tor_http_requests_total", { method: "other" }), 1);
  assert.equal(
    valueOf(families, "cr8tor_http_request_duration_seconds_count", { route: "/runs/:id" }),
    2,
  );
  assert.equal(families.get("cr8tor_http_request_duration_seconds")!.type, "histogram");
});

Deno.test("PrometheusMetrics.sourceConnectionFailed() counts by engine and code", async () => {
  const metrics = new PrometheusMetrics({ service: "metadata", processMetrics: false });
  metrics.sourceConnectionFailed("postgresql", "source_connection_failed");
  metrics.sourceConnectionFailed("postgresql", "source_connection_failed");
  metrics.sourceConnectionFailed("mssql", "source_login_refused");
  metrics.sourceConnectionFailed("mysql", "Not A Code: host 10.0.0.1");
  const families = await parsed(metrics);
  const name = "cr8tor_source_connection_failures_total";
  assert.equal(
    valueOf(families, name, { engine: "postgresql", code: "source_connection_failed" }),
    2,
  );
  assert.equal(valueOf(families, name, { engine: "mssql", code: "source_login_refused" }), 1);
  assert.equal(valueOf(families, name, { engine: "mysql", code: "other" }), 1);
});

Deno.test("PrometheusMetrics keeps each instance's counts apart", async () => {
  const a = new PrometheusMetrics({ service: "a", processMetrics: false });
  const b = new PrometheusMetrics({ service: "b", processMetrics: false });
  a.runChanged("package", null, "queued", null);
  assert.equal(valueOf(await parsed(a), "cr8tor_runs_total"), 1);
  assert.equal(valueOf(await parsed(b), "cr8tor_runs_total"), 0);
});

Deno.test("PrometheusMetrics adds the process metrics Deno lets prom-client read", async () => {
  // Two instances with process metrics: each registers its own, without clashing.
  new PrometheusMetrics({ service: "other" });
  const metrics = new PrometheusMetrics({ service: "approval" });
  const families = await parsed(metrics);
  assert.ok(valueOf(families, "cr8tor_process_cpu_seconds_total") > 0);
  assert.ok(valueOf(families, "cr8tor_process_resident_memory_bytes") > 0);
  assert.ok(valueOf(families, "cr8tor_nodejs_heap_size_used_bytes") > 0);
  // Those read from /proc/self would be a steady 0 without --allow-all: left out.
  for (const name of ["cr8tor_process_open_fds", "cr8tor_process_virtual_memory_bytes"]) {
    assert.equal(families.has(name), false, name);
  }
  assert.equal(metrics.contentType, "text/plain; version=0.0.4; charset=utf-8");
});

/**
 * `GET /metrics`: what a service counts, who may read it, and the composition-root helper that builds
 * both from the environment. The HTTP stack (`create_app.ts`) observes every request and serves the
 * route; the source access (`source_access.ts`) counts connection failures; the use cases count runs.
 *
 * Who may read it (docs/security.md, "Metrics"):
 * - by default, a caller with the service's own `x-api-key`, as any other route;
 * - with `METRICS_BEARER_TOKEN_SECRET_NAME`, also a caller sending `Authorization: Bearer <token>`, the
 *   token read from that secret (what Prometheus sends with `authorization` in its scrape config);
 * - with `METRICS_PUBLIC=true`, anyone who reaches the port.
 *
 * A refused scrape is answered 403 and logged as an ordinary request: it is not a key refusal, so it is
 * not counted in the refusal tally, and a GET is never recorded in the audit trail.
 *
 * @module
 */
import type { Context } from "hono";
import { timingSafeEqual } from "hono/utils/buffer";
import { PrometheusMetrics } from "../../adapters/prometheus/prometheus_metrics.ts";
import type { AnsweredRequest } from "../../adapters/prometheus/prometheus_metrics.ts";
import type { SourceEngine } from "../../domain/source_engine.ts";
import type { RunMetrics } from "../../ports/metrics.ts";
import { ConfigError } from "./app_errors.ts";
import type { CommonConfig } from "./config.ts";
import type { ServiceSecrets } from "./secret_store_from_env.ts";

/** The path metrics are served at. */
export const METRICS_PATH = "/metrics";

/** The shortest bearer token `/metrics` accepts. */
export const MIN_METRICS_TOKEN_LENGTH = 32;

/** Counts source databases that could not be connected to. */
export interface SourceFailureMetrics {
  /** A source of `engine` could not be connected to; `code` is the error's code (`source_login_refused`). */
  sourceConnectionFailed(engine: SourceEngine, code: string): void;
}

/** Everything a service counts, and its rendering for `GET /metrics`. */
export interface ServiceMetrics extends RunMetrics, SourceFailureMetrics {
  /** Counts one answered HTTP request. */
  requestAnswered(request: AnsweredRequest): void;
  /** The `Content-Type` of {@link render}'s text. */
  readonly contentType: string;
  /** Everything counted, in the Prometheus text format. */
  render(): Promise<string>;
}

/** Who may read `GET /metrics`, besides a caller with the service's own key. */
export type MetricsAccess =
  | { readonly kind: "key" }
  | { readonly kind: "token"; readonly token: string }
  | { readonly kind: "public" };

/** Only the service's key: the default. */
export const METRICS_WITH_KEY: MetricsAccess = { kind: "key" };

/**
 * Whether a `GET /metrics` may be answered: always with the service's key, with the bearer token when
 * one is configured, and without anything when metrics are public.
 */
export async function mayReadMetrics(
  c: Context,
  access: MetricsAccess,
  hasServiceKey: () => Promise<boolean>,
): Promise<boolean> {
  if (access.kind === "public") return true;
  if (access.kind === "token") {
    const match = /^Bearer (.+)$/i.exec(c.req.header("authorization") ?? "");
    if (match !== null && await timingSafeEqual(access.token, match[1]!.trim())) return true;
  }
  return await hasServiceKey();
}

/** What the metrics of a service need from its composition root. */
export interface MetricsSetup {
  readonly metrics: PrometheusMetrics;
  readonly metricsAccess: MetricsAccess;
}

/**
 * A service's metrics and the access rule of `/metrics`, from `METRICS_PUBLIC` and
 * `METRICS_BEARER_TOKEN_SECRET_NAME`.
 *
 * @throws {ConfigError} when both are set, or the token's secret is missing, unreadable or shorter than
 *   {@link MIN_METRICS_TOKEN_LENGTH} characters; the message names the secret, never its value.
 */
export async function metricsFrom(
  config: Pick<CommonConfig, "METRICS_PUBLIC" | "METRICS_BEARER_TOKEN_SECRET_NAME">,
  options: { readonly service: string; readonly secrets: ServiceSecrets },
): Promise<MetricsSetup> {
  const metrics = new PrometheusMetrics({ service: options.service });
  const name = config.METRICS_BEARER_TOKEN_SECRET_NAME;
  if (config.METRICS_PUBLIC && name !== undefined) {
    throw new ConfigError(
      "Cannot start: set either METRICS_PUBLIC=true or METRICS_BEARER_TOKEN_SECRET_NAME, not both",
    );
  }
  if (config.METRICS_PUBLIC) return { metrics, metricsAccess: { kind: "public" } };
  if (name === undefined) return { metrics, metricsAccess: METRICS_WITH_KEY };
  let token: string;
  try {
    token = (await options.secrets.store.get(name)).trim();
  } catch (e) {
    throw new ConfigError(
      `Cannot start: cannot read the metrics bearer token from ${options.secrets.where(name)}: ${
        (e as Error).message
      }`,
      { cause: e },
    );
  }
  if (token.length < MIN_METRICS_TOKEN_LENGTH) {
    throw new ConfigError(
      `Cannot start: the metrics bearer token "${name}" must be at least ${MIN_METRICS_TOKEN_LENGTH} characters`,
    );
  }
  return { metrics, metricsAccess: { kind: "token", token } };
}

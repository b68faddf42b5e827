/**
 * Errors raised by the HTTP layer itself (not by the domain, ports or adapters).
 *
 * @module
 */
import { AppError } from "../../domain/errors.ts";

/** A sub-service (metadata or publish) could not be reached. Never names its key. */
export class SubServiceUnavailableError extends AppError {
  readonly code = "sub_service_unavailable";

  constructor(readonly service: string, readonly baseUrl: string, options?: ErrorOptions) {
    super(`Error connecting to the ${service} service. Base url: ${baseUrl}`, options);
  }
}

/** A sub-service did not answer in time. */
export class SubServiceTimeoutError extends AppError {
  readonly code = "sub_service_timeout";

  constructor(readonly service: string, readonly timeoutMs: number, options?: ErrorOptions) {
    super(`The ${service} service did not answer within ${timeoutMs / 1000} s`, options);
  }
}

/** A sub-service answered 2xx with something that is not a JSON object. */
export class SubServiceProtocolError extends AppError {
  readonly code = "sub_service_protocol_error";

  constructor(readonly service: string) {
    super(`The ${service} service sent a reply that is not a JSON object`);
  }
}

/** A sub-service's reply is larger than the gateway reads (`SUBSERVICE_MAX_REPLY_BYTES`). */
export class SubServiceReplyTooLargeError extends AppError {
  readonly code = "sub_service_reply_too_large";

  constructor(readonly service: string, readonly maxBytes: number) {
    super(
      `The ${service} service sent a reply larger than ${maxBytes} bytes, which the gateway does not read`,
    );
  }
}

/**
 * The publish service did not say what a release's run has staged (`POST /data-publish/staging` answered
 * an error): a gated publish, a decision and a release's view need it, so they are refused.
 */
export class StagingUnavailableError extends AppError {
  readonly code = "staging_unavailable";

  constructor(status: number, detail: string) {
    super(`Cannot read what is staged: the publish service answered ${status}: ${detail}`);
  }
}

/**
 * The publish service did not show a publish run the gateway follows (`GET /runs/{id}` answered an error
 * other than `run_not_found`): the run stays pending on its release, and the release sweep tries again.
 */
export class PublishRunUnreadableError extends AppError {
  readonly code = "publish_run_unreadable";

  constructor(status: number, detail: string) {
    super(`Cannot read the publish run: the publish service answered ${status}: ${detail}`);
  }
}

/**
 * The publish service did not revoke a release (`POST /data-publish/revoke` answered an error): the
 * release stays `revoking`, and asking again (or the expiry sweep) retries.
 */
export class RevocationFailedError extends AppError {
  readonly code = "revocation_failed";

  constructor(status: number, detail: string) {
    super(
      `Cannot revoke yet: the publish service answered ${status}: ${detail}; the release stays revoking and is retried`,
    );
  }
}

/** Configuration that prevents a service from starting. */
export class ConfigError extends AppError {
  readonly code = "config_error";
}

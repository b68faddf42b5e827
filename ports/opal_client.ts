/**
 * How the publish service sets up OPAL / DataSHIELD access to published PostgreSQL tables: a few
 * idempotent "ensure" operations, each safe to repeat after a partial run, plus the reads the flow needs.
 *
 * @module
 */
import { AppError } from "../domain/errors.ts";
import type { OpalResourceDefinition } from "../domain/opal.ts";

/** What an ensure operation did: made the thing, changed it to match, or found it already right. */
export type OpalChange = "created" | "updated" | "unchanged";

/** Who the client is logged in as. */
export interface OpalLogin {
  /** The user OPAL authenticated. */
  readonly principal: string;
  /** OPAL's version, from its `X-Opal-Version` header, when it sent one. */
  readonly opalVersion?: string;
}

/** A resource as OPAL lists it (never with credentials). */
export interface OpalResourceSummary {
  readonly name: string;
  readonly provider: string;
  readonly factory: string;
  /** JSON string, as stored. */
  readonly parameters: string;
  readonly description?: string;
  /** The URL OPAL computed from the parameters; only present while OPAL's R server is up. */
  readonly url?: string;
}

/** The OPAL operations of the PostgreSQL publish flow. Every `ensure…` can be repeated safely. */
export interface OpalClient {
  /**
   * Checks that OPAL answers and accepts the credentials.
   *
   * @returns the authenticated principal.
   * @throws {OpalAuthenticationError} when the credentials are refused (never retried).
   * @throws {OpalUnavailableError} when OPAL cannot be reached, times out or answers 5xx.
   */
  checkReady(): Promise<OpalLogin>;

  /**
   * Makes sure the project exists. An existing project is left as it is.
   *
   * @param name the project name; OPAL accepts letters, digits, `_`, `-` and spaces.
   * @returns `created` or `unchanged`.
   * @throws {OpalRejectedError} when OPAL refuses the name.
   * @throws {OpalAuthenticationError | OpalUnavailableError | OpalProtocolError} as for {@link checkReady},
   *   or when OPAL's reply has an unexpected shape.
   */
  ensureProject(name: string): Promise<OpalChange>;

  /**
   * Makes sure `user` exists and is a member of `group`, whether or not the group existed before. A new
   * user is created as a PASSWORD user with `newPassword` (OPAL creates the group with it); an existing
   * user keeps its password, its `enabled` flag and its other groups.
   *
   * @param newPassword used only when the user has to be created; must satisfy OPAL's password policy.
   * @returns `created` (new user), `updated` (group added) or `unchanged`.
   * @throws {OpalRejectedError} when OPAL refuses the user (e.g. a weak password).
   * @throws {OpalAuthenticationError | OpalUnavailableError | OpalProtocolError} as for {@link checkReady},
   *   or when OPAL's reply has an unexpected shape.
   */
  ensureUserInGroup(user: string, group: string, newPassword: string): Promise<OpalChange>;

  /**
   * Makes sure `group` may use DataSHIELD (`DATASHIELD_USE` on `/datashield`). A group that already holds
   * `DATASHIELD_ALL` keeps it: it is never downgraded.
   *
   * @returns `created` (granted), `updated` (an unknown grant replaced) or `unchanged`.
   * @throws {OpalAuthenticationError | OpalUnavailableError | OpalRejectedError | OpalProtocolError} as
   *   for the other operations.
   */
  ensureDatashieldUse(group: string): Promise<OpalChange>;

  /**
   * Makes sure the resource `definition.name` exists in `definition.project` with exactly this definition:
   * created when missing, updated when its provider, factory, description, parameters or credentials
   * differ (JSON compared by value), left alone when equal.
   *
   * @returns `created`, `updated` or `unchanged`.
   * @throws {OpalProjectNotFoundError} when the project does not exist.
   * @throws {OpalAuthenticationError | OpalUnavailableError | OpalRejectedError | OpalProtocolError} as
   *   for the other operations.
   */
  ensureResource(definition: OpalResourceDefinition): Promise<OpalChange>;

  /**
   * Makes sure `group` may view every resource of `project` (`RESOURCES_VIEW` on
   * `/project/{project}/resources`). A group holding `RESOURCES_ALL` keeps it.
   *
   * @returns `created` (granted), `updated` (an unknown grant replaced) or `unchanged`.
   * @throws {OpalProjectNotFoundError} when the project does not exist.
   * @throws {OpalAuthenticationError | OpalUnavailableError | OpalRejectedError | OpalProtocolError} as
   *   for the other operations.
   */
  ensureResourcesView(project: string, group: string): Promise<OpalChange>;

  /**
   * Lists the project's resources, sorted by name, without credentials.
   *
   * @throws {OpalProjectNotFoundError} when the project does not exist.
   * @throws {OpalAuthenticationError | OpalUnavailableError | OpalProtocolError} as for {@link checkReady},
   *   or when OPAL's reply has an unexpected shape.
   */
  listResources(project: string): Promise<OpalResourceSummary[]>;

  /**
   * Deletes one resource of a project (and the permissions on it), for a revocation. Idempotent: a
   * missing resource or project is fine.
   *
   * @returns `"deleted"` or `"missing"` (nothing was there).
   * @throws {OpalAuthenticationError | OpalUnavailableError | OpalRejectedError | OpalProtocolError} as
   *   for the other operations.
   */
  deleteResource(project: string, name: string): Promise<OpalRemoval>;

  /**
   * Removes every permission of a group on the project's resources. Idempotent: a missing project or
   * grant is fine.
   *
   * @throws {OpalAuthenticationError | OpalUnavailableError | OpalRejectedError | OpalProtocolError} as
   *   for the other operations.
   */
  removeResourcesView(project: string, group: string): Promise<OpalRemoval>;

  /**
   * Removes the group's DataSHIELD permissions, then the group itself (its members leave it; the users
   * stay). Idempotent: a missing grant or group is fine.
   *
   * @throws {OpalAuthenticationError | OpalUnavailableError | OpalRejectedError | OpalProtocolError} as
   *   for the other operations.
   */
  removeGroup(group: string): Promise<OpalRemoval>;
}

/** What a removal found: the thing was there and is gone now, or was not there. */
export type OpalRemoval = "deleted" | "missing";

/** The request an OPAL error is about, e.g. `POST /ws/projects`. Never holds credentials. */
export interface OpalRequestRef {
  readonly method: string;
  /** The path as sent, including `/ws`, without the query. */
  readonly path: string;
}

/** Any failure of an OPAL call. Messages never contain passwords or the Authorization header. */
export abstract class OpalError extends AppError {
  constructor(readonly request: OpalRequestRef, message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** OPAL could not be reached, did not answer in time, or answered 5xx: it is down or overloaded. */
export class OpalUnavailableError extends OpalError {
  readonly code = "opal_unavailable";

  /**
   * @param status OPAL's (or its proxy's) 5xx status, when it answered at all.
   * @param timedOut true when OPAL did not answer within the client's timeout.
   */
  constructor(
    request: OpalRequestRef,
    detail: string,
    readonly status: number | undefined,
    readonly timedOut: boolean,
    options?: ErrorOptions,
  ) {
    super(request, detail, options);
  }
}

/**
 * OPAL refused the credentials (401) or the user lacks a permission (403). Never retried: OPAL bans an
 * account for 5 minutes after 3 failed logins.
 */
export class OpalAuthenticationError extends OpalError {
  readonly code = "opal_authentication_failed";

  constructor(
    request: OpalRequestRef,
    readonly status: 401 | 403,
    readonly username: string,
    options?: ErrorOptions,
  ) {
    super(
      request,
      status === 401
        ? `OPAL answered 401 to ${request.method} ${request.path}: it refused the credentials of user "${username}" (not retried, so the account is not locked)`
        : `OPAL answered 403 to ${request.method} ${request.path}: user "${username}" lacks the permission`,
      options,
    );
  }
}

/** OPAL answered 4xx (other than 401 and 403): it refused the request. */
export class OpalRejectedError extends OpalError {
  readonly code: string = "opal_rejected";

  /**
   * @param status the HTTP status.
   * @param opalStatus the `status` word of OPAL's error body (e.g. `IllegalArgument`), if any.
   * @param opalArguments the `arguments` of OPAL's error body, if any.
   */
  constructor(
    request: OpalRequestRef,
    readonly status: number,
    readonly opalStatus: string | undefined,
    readonly opalArguments: readonly string[],
    options?: ErrorOptions & { detail?: string },
  ) {
    super(
      request,
      `OPAL answered ${status} to ${request.method} ${request.path}${
        options?.detail ?? describeOpalError(opalStatus, opalArguments)
      }`,
      options,
    );
  }
}

/** OPAL answered 404 NoSuchProject: the project does not exist. */
export class OpalProjectNotFoundError extends OpalRejectedError {
  override readonly code: string = "opal_project_not_found";

  constructor(
    request: OpalRequestRef,
    readonly projectName: string,
    opalArguments: readonly string[],
    options?: ErrorOptions,
  ) {
    super(request, 404, "NoSuchProject", opalArguments, {
      ...options,
      detail: `: project "${projectName}" does not exist`,
    });
  }
}

/** OPAL answered with something the client cannot understand (a redirect, or a body of the wrong shape). */
export class OpalProtocolError extends OpalError {
  readonly code = "opal_protocol_error";
}

function describeOpalError(
  opalStatus: string | undefined,
  opalArguments: readonly string[],
): string {
  const word = opalStatus === undefined || opalStatus === "" ? "" : `: ${opalStatus}`;
  const args = opalArguments.length === 0 ? "" : ` (${opalArguments.join("; ")})`;
  return `${word}${args}`;
}

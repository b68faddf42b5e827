/**
 * The dashboard (`/ui/`, `docs/ui.md`): pages rendered on the server with `hono/jsx` (which escapes
 * every value), for people signed in with OpenID Connect (authorization code flow with PKCE,
 * `adapters/oidc/oidc_login.ts`) and holding a server-side session ({@link SessionStore}).
 *
 * Safety: every `/ui` response carries a strict Content-Security-Policy (no inline script or style),
 * `X-Content-Type-Options`, `Referrer-Policy` and `Cache-Control: no-store`; every POST must come from the
 * dashboard's own origin (`Origin`) and carry the session's synchronizer token (`csrf`); the session
 * cookie is `HttpOnly`, `SameSite=Lax`, `Path=/ui` and `Secure` unless `UI_BASE_URL` is plain http to a
 * loopback host. The browser never sees an API key: the service acts on the person's behalf, only for
 * what their roles allow (decisions as the policy says; cancel and resume for `UI_OPERATOR_ROLES`).
 *
 * @module
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import { Hono } from "hono";
import type { Context } from "hono";
import { getCookie, setCookie } from "hono/cookie";
import type { Child } from "hono/jsx";
import type { PendingLogin } from "../../../adapters/oidc/oidc_login.ts";
import { sameSecret } from "../../../adapters/oidc/oidc_login.ts";
import type { DecisionAttempt, Releases, ReleaseView } from "../../../application/releases.ts";
import { DatasetMetadataPayload } from "../../../domain/contract.ts";
import { AppError } from "../../../domain/errors.ts";
import {
  DECISION_KINDS,
  type DecisionKind,
  MAX_REVOCATION_REASON_LENGTH,
} from "../../../domain/release.ts";
import type { Person } from "../../../ports/identity.ts";
import { statusOf } from "../../_shared/http_errors.ts";
import type { Logger } from "../../_shared/log.ts";
import { requestIdOf } from "../../_shared/request_ids.ts";
import type { SubServiceReply } from "../sub_service.ts";
import { type Session, SessionStore } from "./sessions.ts";
import { publishedOutput } from "../../../domain/audit.ts";
import { RUN_STATES, type RunView, type TableProgress } from "../../../domain/run.ts";
import { DASHBOARD_SCRIPT, DASHBOARD_STYLE } from "./static.ts";
import { addUploads, TUS_PATH, type UploadDeps } from "./uploads.tsx";

import { UI_PREFIX } from "./paths.ts";
export { UI_PREFIX };

/** The session cookie's name. */
export const SESSION_COOKIE = "cr8tor_session";

/** The cookie that ties a sign-in under way to the browser that started it. */
export const LOGIN_COOKIE = "cr8tor_login";

/** The Content-Security-Policy of every dashboard response. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

/** The OpenID Connect sign-in the dashboard uses (`OidcLogin`). */
export interface PersonLogin {
  begin(): Promise<{ url: string; pending: PendingLogin }>;
  finish(code: string, pending: PendingLogin): Promise<Person>;
}

/** The publish service's runs API as the dashboard uses it (with the gateway's key, never the browser's). */
export interface PublishRuns {
  /** Calls `endpoint` (relative to the publish service, e.g. `runs?limit=50`). */
  call(c: Context, method: "GET" | "POST", endpoint: string): Promise<SubServiceReply>;
  /** Relays a run's event stream (`runs/<id>/events`). */
  events(c: Context, endpoint: string): Promise<Response>;
}

/** What the dashboard needs. */
export interface DashboardDeps {
  readonly login: PersonLogin;
  /** The public URL of the service (`UI_BASE_URL`), without the `/ui` path. */
  readonly baseUrl: string;
  /** How long a session lasts (`UI_SESSION_TTL_MINUTES`). */
  readonly sessionTtlMs: number;
  /** Roles that may cancel and resume runs (`UI_OPERATOR_ROLES`). */
  readonly operatorRoles: readonly string[];
  /** The release use cases for a request. */
  readonly releasesFor: (c: Context) => Releases;
  /** Records a decision attempt in the audit trail of the request. */
  readonly recordDecision: (c: Context, attempt: DecisionAttempt) => void;
  readonly log: Logger;
  /** The publish service's runs API, called with the service's own key. */
  readonly publish: PublishRuns;
  /**
   * Asks the metadata service (`POST /metadata/project`, with the service's own key) to describe one
   * dataset of a release's request; `body` holds the source's secret names, for that service only.
   */
  readonly describe: (c: Context, body: Record<string, unknown>) => Promise<SubServiceReply>;
  /**
   * Revokes release `id` for `reason` on `person`'s behalf (`docs/revocation.md`), recording the
   * certificate in the request's audit record.
   *
   * @throws {NotEntitledToRevokeError} when the person holds no revocation role.
   */
  readonly revoke: (c: Context, id: string, reason: string, person: Person) => Promise<void>;
  /** Whether `person` may revoke releases (one of the policy's `revocation_roles`). */
  readonly mayRevoke: (person: Person) => boolean;
  /** The clock in ms; for tests. */
  readonly now?: () => number;
  /** Uploads (`docs/uploads.md`); absent when `UPLOAD_QUARANTINE_PATH` is unset. */
  readonly uploads?: UploadDeps | undefined;
}

/** What the metadata service said of a release's datasets (in the request's order), or why not. */
interface RequestDescription {
  /** One per requested dataset; `undefined` where the metadata service gave no description. */
  readonly datasets: readonly (DatasetMetadataPayload | undefined)[];
  /** Why the types and descriptions are missing; `null` when every dataset was described. */
  readonly notice: string | null;
}

/** Whether cookies may go without `Secure`: plain http to a loopback host only. */
export function isLoopbackHttp(baseUrl: string): boolean {
  const url = new URL(baseUrl);
  return url.protocol === "http:" && ["127.0.0.1", "localhost", "[::1]"].includes(url.hostname);
}

/** No session: the page asks to sign in. */
class NotSignedIn extends Error {}

/** A refusal shown to the person as a page with a status. */
class PageRefusal extends Error {
  constructor(readonly status: 400 | 403 | 404 | 409, message: string) {
    super(message);
  }
}

/**
 * Adds the dashboard's routes under `/ui` to `app` (a service app whose key check leaves `/ui` alone:
 * `ServiceOptions.signsInItselfUnder`).
 */
export function addDashboard(app: OpenAPIHono, deps: DashboardDeps): void {
  const sessions = new SessionStore({
    ttlMs: deps.sessionTtlMs,
    ...(deps.now === undefined ? {} : { now: deps.now }),
  });
  const origin = new URL(deps.baseUrl).origin;
  const secure = !isLoopbackHttp(deps.baseUrl);
  const cookieOptions = { path: UI_PREFIX, httpOnly: true, secure, sameSite: "Lax" } as const;
  const ui = new Hono();

  ui.use(`${UI_PREFIX}/*`, async function securityHeaders(c, next) {
    await next();
    c.header("Content-Security-Policy", CONTENT_SECURITY_POLICY);
    c.header("X-Content-Type-Options", "nosniff");
    // `no-referrer` would make browsers send `Origin: null` on form posts, which the CSRF check refuses.
    c.header("Referrer-Policy", "same-origin");
    c.header("X-Frame-Options", "DENY");
    c.header("Cross-Origin-Opener-Policy", "same-origin");
    if (!c.req.path.startsWith(`${UI_PREFIX}/static/`)) c.header("Cache-Control", "no-store");
  });

  ui.onError((error, c) => {
    if (error instanceof NotSignedIn) return c.html(signInPage(), 401);
    if (error instanceof PageRefusal) {
      return c.html(errorPage(sessionOf(c), error.message), error.status);
    }
    const status = statusOf(error);
    if (error instanceof AppError && status !== undefined) {
      deps.log.info("ui_refused", { code: error.code, status, request_id: requestIdOf(c) });
      return c.html(errorPage(sessionOf(c), error.message), status);
    }
    deps.log.error("ui_error", {
      request_id: requestIdOf(c),
      error: error instanceof Error ? error.name : typeof error,
      message: error instanceof Error ? error.message : undefined,
      stack: error instanceof Error ? error.stack : undefined,
    });
    return c.html(
      errorPage(
        sessionOf(c),
        `Something went wrong; the service log has the details under request id ${requestIdOf(c)}`,
      ),
      500,
    );
  });

  ui.get(`${UI_PREFIX}/static/style.css`, (c) => {
    c.header("Content-Type", "text/css; charset=utf-8");
    c.header("Cache-Control", "public, max-age=300");
    return c.body(DASHBOARD_STYLE);
  });
  ui.get(`${UI_PREFIX}/static/live.js`, (c) => {
    c.header("Content-Type", "text/javascript; charset=utf-8");
    c.header("Cache-Control", "public, max-age=300");
    return c.body(DASHBOARD_SCRIPT);
  });

  /** The session of the request's cookie, or `undefined`. */
  function sessionOf(c: Context): Session | undefined {
    const id = getCookie(c, SESSION_COOKIE);
    return id === undefined ? undefined : sessions.get(id);
  }

  /** Every POST: from the dashboard's own origin, with the session's synchronizer token. */
  ui.use(`${UI_PREFIX}/*`, async function csrfCheck(c, next) {
    // The tus endpoint checks its own token header: its requests carry file bytes, not forms.
    if (c.req.method !== "POST" || c.req.path.startsWith(TUS_PATH)) return await next();
    const from = c.req.header("origin") ?? refererOrigin(c.req.header("referer"));
    if (from !== origin) {
      throw new PageRefusal(403, "Refused: the form was not sent from this dashboard.");
    }
    const session = sessionOf(c);
    if (session === undefined) {
      throw new PageRefusal(403, "Your session has ended; sign in again and repeat.");
    }
    const form = await c.req.parseBody();
    const token = form.csrf;
    if (typeof token !== "string" || !sameSecret(token, session.csrf)) {
      throw new PageRefusal(403, "Refused: the form's security token is missing or out of date.");
    }
    c.set("form" as never, form as never);
    await next();
  });

  ui.get(`${UI_PREFIX}/login`, async (c) => {
    const { url, pending } = await deps.login.begin();
    setCookie(c, LOGIN_COOKIE, sessions.holdLogin(pending), { ...cookieOptions, maxAge: 600 });
    return c.redirect(url, 302);
  });

  ui.get(`${UI_PREFIX}/callback`, async (c) => {
    const loginId = getCookie(c, LOGIN_COOKIE);
    setCookie(c, LOGIN_COOKIE, "", { ...cookieOptions, maxAge: 0 });
    const pending = loginId === undefined ? undefined : sessions.takeLogin(loginId);
    const state = c.req.query("state");
    if (pending === undefined || state === undefined || !sameSecret(state, pending.state)) {
      throw new PageRefusal(
        400,
        "This sign-in is not the one this browser started; sign in again.",
      );
    }
    if (c.req.query("error") !== undefined) {
      throw new PageRefusal(403, "The identity provider did not sign you in; sign in again.");
    }
    const code = c.req.query("code");
    if (code === undefined) throw new PageRefusal(400, "The sign-in came back without a code.");
    const person = await deps.login.finish(code, pending);
    const session = sessions.open(person);
    setCookie(c, SESSION_COOKIE, session.id, {
      ...cookieOptions,
      maxAge: Math.floor(deps.sessionTtlMs / 1000),
    });
    deps.log.info("ui_signed_in", { person_id: person.id, request_id: requestIdOf(c) });
    return c.redirect(`${UI_PREFIX}/`, 303);
  });

  ui.post(`${UI_PREFIX}/logout`, (c) => {
    const session = sessionOf(c);
    if (session !== undefined) sessions.end(session.id);
    setCookie(c, SESSION_COOKIE, "", { ...cookieOptions, maxAge: 0 });
    return c.html(signInPage("You are signed out."));
  });

  /** The signed-in session, or a refusal: a GET without one shows the sign-in page. */
  function signedIn(c: Context): Session {
    const session = sessionOf(c);
    if (session === undefined) throw new NotSignedIn();
    return session;
  }

  ui.get(`${UI_PREFIX}/`, async (c) => {
    const session = signedIn(c);
    const awaiting = await deps.releasesFor(c).awaiting(session.person);
    return c.html(
      <Page session={session} title="Awaiting me" current="awaiting">
        <h1>Awaiting me</h1>
        {awaiting.length === 0
          ? <p>Nothing awaits your decision.</p>
          : <ReleaseTable releases={awaiting} />}
      </Page>,
    );
  });

  ui.get(`${UI_PREFIX}/releases/:id`, async (c) => {
    const session = signedIn(c);
    const view = await deps.releasesFor(c).view(c.req.param("id"), {
      kind: "person",
      person: session.person,
    });
    return c.html(
      await releasePageFor(c, session, view, c.req.query("done") === "1" ? "Recorded." : null),
    );
  });

  /** The release page of `view` for `session`, with its runs and request description. */
  async function releasePageFor(
    c: Context,
    session: Session,
    view: ReleaseView,
    notice: string | null,
    refusal?: string,
  ) {
    const runs = await releaseRuns(c, view);
    return releasePage(
      session,
      view,
      runs,
      await describeRequest(c, view),
      { operator: isOperator(session), revoker: deps.mayRevoke(session.person) },
      notice,
      refusal,
    );
  }

  /**
   * The metadata service's description (types, descriptions) of what the release was requested for, on
   * the signed-in person's behalf; a notice instead when it cannot answer (the page still shows the
   * stored request).
   */
  async function describeRequest(c: Context, view: ReleaseView): Promise<RequestDescription> {
    if (view.request === null) return { datasets: [], notice: null };
    const bodies = await deps.releasesFor(c).metadataRequests(view.id);
    const replies = await Promise.all(bodies.map(async (body) => {
      try {
        const reply = await deps.describe(c, body);
        const payload = reply.status === 200
          ? DatasetMetadataPayload.safeParse(reply.body.payload)
          : undefined;
        if (payload?.success === true) return payload.data;
        deps.log.warn("ui_metadata_refused", { status: reply.status, request_id: requestIdOf(c) });
      } catch (error) {
        deps.log.warn("ui_metadata_unavailable", {
          error: error instanceof AppError ? error.code : "unexpected",
          request_id: requestIdOf(c),
        });
      }
      return undefined;
    }));
    return {
      datasets: replies,
      notice: replies.every((reply) => reply !== undefined)
        ? null
        : "The metadata service could not describe the request now: column types and the source's " +
          "descriptions are missing below. Reload the page to try again.",
    };
  }

  /** The runs of a release's project run (newest first). */
  async function releaseRuns(c: Context, view: ReleaseView): Promise<RunView[]> {
    const runs = await runsOf(c, new URLSearchParams({ project: view.project_name, limit: "100" }));
    return runs.filter((run) =>
      run.project_start_time === view.project_start_time &&
      run.destination.name === view.destination.name
    );
  }

  ui.post(`${UI_PREFIX}/releases/:id/decisions`, async (c) => {
    const session = signedIn(c);
    const form = c.get("form" as never) as Record<string, unknown>;
    const id = c.req.param("id");
    const [gate, approvalType] = String(form.action ?? "").split("|");
    const decision = String(form.decision ?? "");
    if (
      gate === undefined || approvalType === undefined ||
      !(DECISION_KINDS as readonly string[]).includes(decision)
    ) {
      throw new PageRefusal(400, "Choose what you decide, and for which gate and approval type.");
    }
    const comment = typeof form.comment === "string" && form.comment.trim() !== ""
      ? form.comment.slice(0, 2000)
      : undefined;
    const releases = deps.releasesFor(c);
    try {
      await releases.decide(id, session.person, {
        gate,
        approval_type: approvalType,
        decision: decision as DecisionKind,
        comment,
      }, (attempt) => deps.recordDecision(c, attempt));
    } catch (error) {
      const status = statusOf(error);
      if (!(error instanceof AppError) || status === undefined) throw error;
      const view = await releases.view(id, { kind: "person", person: session.person });
      return c.html(await releasePageFor(c, session, view, null, error.message), status);
    }
    return c.redirect(`${UI_PREFIX}/releases/${encodeURIComponent(id)}?done=1`, 303);
  });

  ui.post(`${UI_PREFIX}/releases/:id/revoke`, async (c) => {
    const session = signedIn(c);
    const form = c.get("form" as never) as Record<string, unknown>;
    const id = c.req.param("id");
    const reason = typeof form.reason === "string" ? form.reason.trim() : "";
    if (reason === "" || reason.length > MAX_REVOCATION_REASON_LENGTH) {
      throw new PageRefusal(
        400,
        `Say why you revoke the release (1 to ${MAX_REVOCATION_REASON_LENGTH} characters).`,
      );
    }
    try {
      await deps.revoke(c, id, reason, session.person);
    } catch (error) {
      const status = statusOf(error);
      if (!(error instanceof AppError) || status === undefined) throw error;
      const view = await deps.releasesFor(c).view(id, { kind: "person", person: session.person });
      return c.html(await releasePageFor(c, session, view, null, error.message), status);
    }
    return c.redirect(`${UI_PREFIX}/releases/${encodeURIComponent(id)}?done=1`, 303);
  });

  /** Runs from the publish service, or a refusal page when it cannot answer. */
  async function runsOf(c: Context, query: URLSearchParams): Promise<RunView[]> {
    const reply = await deps.publish.call(c, "GET", `runs?${query}`);
    if (reply.status !== 200) {
      throw new PageRefusal(409, `The publish service could not list the runs (${reply.status}).`);
    }
    const payload = reply.body.payload as { runs?: RunView[] } | undefined;
    return payload?.runs ?? [];
  }

  /** Whether the person may cancel and resume runs. */
  function isOperator(session: Session): boolean {
    return session.person.roles.some((role) => deps.operatorRoles.includes(role));
  }

  ui.get(`${UI_PREFIX}/runs`, async (c) => {
    const session = signedIn(c);
    const project = (c.req.query("project") ?? "").trim().slice(0, 200);
    const stateText = c.req.query("state") ?? "";
    const state = (RUN_STATES as readonly string[]).includes(stateText) ? stateText : "";
    const query = new URLSearchParams({ limit: "50" });
    if (project !== "") query.set("project", project);
    if (state !== "") query.set("state", state);
    const runs = await runsOf(c, query);
    const releases = await deps.releasesFor(c).list({
      limit: 50,
      ...(project === "" ? {} : { project }),
    }, { kind: "person", person: session.person });
    return c.html(
      <Page session={session} title="Releases and runs" current="runs">
        <h1>Releases and runs</h1>
        <form method="get" action={`${UI_PREFIX}/runs`} class="filters">
          <label for="project">Project</label>
          <input type="text" id="project" name="project" value={project} />
          <label for="state">Run state</label>
          <select id="state" name="state">
            <option value="" selected={state === ""}>any</option>
            {RUN_STATES.map((s) => <option key={s} value={s} selected={state === s}>{s}</option>)}
          </select>
          <button type="submit">Filter</button>
        </form>
        <h2>Releases</h2>
        {releases.releases.length === 0
          ? <p>No release.</p>
          : <ReleaseTable releases={releases.releases} />}
        <h2>Runs</h2>
        {runs.length === 0
          ? <p>No run.</p>
          : runs.map((run) => (
            <RunSection run={run} session={session} operator={isOperator(session)} />
          ))}
      </Page>,
    );
  });

  ui.get(`${UI_PREFIX}/runs/:id/events`, async (c) => {
    signedIn(c);
    return await deps.publish.events(c, `runs/${encodeURIComponent(c.req.param("id"))}/events`);
  });

  for (const action of ["cancel", "resume"] as const) {
    ui.post(`${UI_PREFIX}/runs/:id/${action}`, async (c) => {
      const session = signedIn(c);
      if (!isOperator(session)) {
        throw new PageRefusal(
          403,
          `Only operators (roles: ${deps.operatorRoles.join(", ")}) may ${action} runs.`,
        );
      }
      const id = c.req.param("id");
      const reply = await deps.publish.call(c, "POST", `runs/${encodeURIComponent(id)}/${action}`);
      if (reply.status >= 300) {
        const detail = (reply.body.payload as { detail?: unknown } | undefined)?.detail;
        throw new PageRefusal(
          reply.status === 404 ? 404 : 409,
          typeof detail === "string" ? detail : `The publish service refused (${reply.status}).`,
        );
      }
      deps.log.info("ui_run_action", {
        action,
        run_id: id,
        person_id: session.person.id,
        request_id: requestIdOf(c),
      });
      return c.redirect(`${UI_PREFIX}/runs?done=${action}`, 303);
    });
  }

  ui.get(`${UI_PREFIX}/published`, async (c) => {
    const session = signedIn(c);
    const runs = (await runsOf(c, new URLSearchParams({ state: "succeeded", limit: "200" })))
      .filter((run) => run.action === "publish");
    return c.html(
      <Page session={session} title="Published" current="published">
        <h1>Published</h1>
        <p>
          What reached production. To verify a bag (BagIt 1.0, SHA-512), in its folder run{" "}
          <code>
            sha512sum --check manifest-sha512.txt && sha512sum --check tagmanifest-sha512.txt
          </code>
        </p>
        {runs.length === 0 ? <p>Nothing published yet.</p> : (
          <table>
            <ColumnHeads
              names={["Project", "Run started", "Destination", "Published", "Files (SHA-512)"]}
            />
            <tbody>
              {runs.map((run) => {
                const body = run.outcome?.body as { payload?: unknown } | undefined;
                const output = publishedOutput(body?.payload);
                return (
                  <tr>
                    <td>{run.project_name}</td>
                    <td>{run.project_start_time}</td>
                    <td>{run.destination.type} {run.destination.name}</td>
                    <td>{run.finished_at ?? ""}</td>
                    <td>
                      <ul class="plain">
                        {(output?.files ?? []).map((file) => (
                          <li>
                            <code>{file.path}</code> ({file.bytes} bytes) <code>{file.sha512}</code>
                          </li>
                        ))}
                        {(output?.destination_tables ?? []).map((table) => (
                          <li>
                            table <code>{table}</code>
                          </li>
                        ))}
                      </ul>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        )}
      </Page>,
    );
  });

  if (deps.uploads === undefined) {
    ui.get(`${UI_PREFIX}/uploads`, (c) =>
      c.html(
        <Page session={signedIn(c)} title="Uploads" current="uploads">
          <h1>Uploads</h1>
          <p>Uploads are off on this service (UPLOAD_QUARANTINE_PATH is unset).</p>
        </Page>,
      ));
  } else {
    addUploads(ui, deps.uploads, {
      sessionOf,
      signedIn,
      origin,
      log: deps.log,
      now: deps.now ?? Date.now,
    });
  }

  ui.get(UI_PREFIX, (c) => c.redirect(`${UI_PREFIX}/`, 301));
  app.route("/", ui);
}

function refererOrigin(referer: string | undefined): string | undefined {
  if (referer === undefined || !URL.canParse(referer)) return undefined;
  return new URL(referer).origin;
}

// ---- pages

/** The frame of every dashboard page: head, navigation, the signed-in person, `main`. */
export function Page(
  props: { session?: Session | undefined; title: string; current?: string; children?: Child },
) {
  const session = props.session;
  const nav: [string, string, string][] = [
    ["awaiting", `${UI_PREFIX}/`, "Awaiting me"],
    ["runs", `${UI_PREFIX}/runs`, "Releases and runs"],
    ["published", `${UI_PREFIX}/published`, "Published"],
    ["uploads", `${UI_PREFIX}/uploads`, "Uploads"],
  ];
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{props.title} · CR8TOR Publisher</title>
        <link rel="stylesheet" href={`${UI_PREFIX}/static/style.css`} />
        <script src={`${UI_PREFIX}/static/live.js`} defer></script>
      </head>
      <body>
        <a class="skip" href="#main">Skip to content</a>
        <header>
          <span class="brand">CR8TOR Publisher</span>
          {session === undefined ? null : (
            <nav aria-label="Main">
              <ul>
                {nav.map(([key, href, label]) => (
                  <li>
                    <a href={href} aria-current={props.current === key ? "page" : undefined}>
                      {label}
                    </a>
                  </li>
                ))}
              </ul>
            </nav>
          )}
          {session === undefined
            ? null
            : (
              <form method="post" action={`${UI_PREFIX}/logout`} class="who">
                <span>
                  {session.person.name} ({session.person.roles.join(", ") || "no roles"})
                </span>
                <input type="hidden" name="csrf" value={session.csrf} />
                <button type="submit">Sign out</button>
              </form>
            )}
        </header>
        <main id="main">{props.children}</main>
      </body>
    </html>
  );
}

function signInPage(message?: string) {
  return (
    <Page title="Sign in">
      <h1>Sign in</h1>
      {message === undefined ? null : <p role="status">{message}</p>}
      <p>The dashboard shows releases awaiting approval, runs and what was published.</p>
      <p>
        <a class="button" href={`${UI_PREFIX}/login`}>Sign in with your organisation</a>
      </p>
    </Page>
  );
}

function errorPage(session: Session | undefined, message: string) {
  return (
    <Page session={session} title="Refused">
      <h1>Refused</h1>
      <p class="error" role="alert">{message}</p>
      <p>
        <a href={`${UI_PREFIX}/`}>Back to the dashboard</a>
      </p>
    </Page>
  );
}

/** A table's header row: one column header a name, in order. */
function ColumnHeads(props: { names: readonly string[] }) {
  return (
    <thead>
      <tr>
        {props.names.map((name) => <th key={name} scope="col">{name}</th>)}
      </tr>
    </thead>
  );
}

function ReleaseTable(props: { releases: readonly ReleaseView[] }) {
  return (
    <table>
      <caption class="visually-hidden">Releases</caption>
      <ColumnHeads names={["Project", "Run started", "Destination", "Asked", "Gates"]} />
      <tbody>
        {props.releases.map((release) => (
          <tr>
            <td>
              <a href={`${UI_PREFIX}/releases/${encodeURIComponent(release.id)}`}>
                {release.project_name}
              </a>
            </td>
            <td>{release.project_start_time}</td>
            <td>{release.destination.type} {release.destination.name}</td>
            <td>{release.created_at}</td>
            <td>
              {release.gates.map((gate) => `${gate.gate}: ${gate.met ? "met" : "awaiting"}`).join(
                "; ",
              )}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/**
 * What the release was requested for: the source and, per dataset, its tables and columns with types
 * and descriptions (from the metadata service when it answered, else as requested). Never row data.
 */
function RequestSection(props: { view: ReleaseView; described: RequestDescription }) {
  const request = props.view.request;
  if (request === null) {
    return (
      <section aria-labelledby="request-heading">
        <h2 id="request-heading">Requested data</h2>
        <p>No request recorded for this release (it was named by a publish request only).</p>
      </section>
    );
  }
  const { source } = request;
  return (
    <section aria-labelledby="request-heading">
      <h2 id="request-heading">Requested data</h2>
      {props.described.notice === null
        ? null
        : <p role="status" class="notice">{props.described.notice}</p>}
      <dl>
        <dt>Source</dt>
        <dd>
          {source.type} {source.host}:{String(source.port)}
          {source.http_path === undefined ? null : <>{" "}{source.http_path}</>}
        </dd>
        <dt>{source.type === "databrickssql" ? "Catalog" : "Database"}</dt>
        <dd>{source.database}</dd>
      </dl>
      {request.datasets.map((dataset, index) => (
        <DatasetSection
          key={dataset.schema_name}
          dataset={dataset}
          described={props.described.datasets[index]}
        />
      ))}
    </section>
  );
}

function DatasetSection(
  props: {
    dataset: NonNullable<ReleaseView["request"]>["datasets"][number];
    described: DatasetMetadataPayload | undefined;
  },
) {
  const { dataset, described } = props;
  const tables = described?.tables.map((table) => ({
    name: table.name,
    description: table.description,
    columns: table.columns.map((column) => ({
      name: column.name,
      datatype: column.datatype as string | null,
      description: column.description,
    })),
  })) ?? (dataset.tables ?? []).map((table) => ({
    name: table.name,
    description: table.description,
    columns: (table.columns ?? []).map((column) => ({
      name: column.name,
      datatype: null as string | null,
      description: column.description,
    })),
  }));
  return (
    <section class="dataset" data-schema={dataset.schema_name}>
      <h3>
        Dataset {dataset.name ?? described?.name ?? dataset.schema_name} (schema{" "}
        <code>{dataset.schema_name}</code>)
      </h3>
      {(described?.description ?? dataset.description) === null
        ? null
        : <p>{described?.description ?? dataset.description}</p>}
      {dataset.tables === null && described === undefined
        ? <p>Every table of the schema.</p>
        : null}
      {tables.map((table) => (
        <table key={table.name} data-table={table.name}>
          <caption>
            Table <code>{table.name}</code>
            {table.description === null ? null : <>: {table.description}</>}
          </caption>
          <ColumnHeads names={["Column", "Type", "Description"]} />
          <tbody>
            {table.columns.length === 0
              ? (
                <tr>
                  <td colspan={3}>Every column of the table.</td>
                </tr>
              )
              : table.columns.map((column) => (
                <tr>
                  <td>
                    <code>{column.name}</code>
                  </td>
                  <td>{column.datatype ?? "unknown"}</td>
                  <td>{column.description ?? ""}</td>
                </tr>
              ))}
          </tbody>
        </table>
      ))}
    </section>
  );
}

function releasePage(
  session: Session,
  view: ReleaseView,
  runs: readonly RunView[],
  described: RequestDescription,
  may: { readonly operator: boolean; readonly revoker: boolean },
  notice: string | null,
  refusal?: string,
) {
  const operator = may.operator;
  const requester = view.requested_by.kind === "key"
    ? "a service key"
    : `person ${view.requested_by.id}`;
  return (
    <Page session={session} title={`Release ${view.project_name}`}>
      <h1>Release {view.project_name}</h1>
      {notice === null ? null : <p role="status" class="notice">{notice}</p>}
      {refusal === undefined ? null : <p role="alert" class="error">{refusal}</p>}
      <dl>
        <dt>Release</dt>
        <dd>
          <code>{view.id}</code>
        </dd>
        <dt>Project run</dt>
        <dd>{view.project_name} started {view.project_start_time}</dd>
        <dt>Destination</dt>
        <dd>{view.destination.type} {view.destination.name}</dd>
        <dt>Asked by</dt>
        <dd>{requester} at {view.created_at}</dd>
        <dt>State</dt>
        <dd>{view.state}</dd>
        <dt>Published</dt>
        <dd>{view.publication === null ? "not yet" : view.publication.published_at}</dd>
        <dt>Expires</dt>
        <dd>{view.expires_at ?? "never"}</dd>
      </dl>
      <RevocationSection view={view} session={session} revoker={may.revoker} />
      <h2>Gates</h2>
      <table>
        <ColumnHeads names={["Gate", "Before", "Met", "Still missing"]} />
        <tbody>
          {view.gates.map((gate) => (
            <tr>
              <td>{gate.gate}</td>
              <td>{gate.before}</td>
              <td>{gate.met ? "yes" : "no"}</td>
              <td>
                {Object.entries(gate.missing).filter(([, n]) => n > 0).map(([type, n]) =>
                  `${n} ${type}`
                ).join(", ") || "nothing"}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Decisions</h2>
      {view.decisions.length === 0 ? <p>No decision yet.</p> : (
        <table>
          <ColumnHeads names={["When", "Who", "Gate", "Type", "Decision"]} />
          <tbody>
            {view.decisions.map((decision) => (
              <tr>
                <td>{decision.at}</td>
                <td>{decision.person.name}</td>
                <td>{decision.gate}</td>
                <td>{decision.approval_type}</td>
                <td>{decision.decision.replace("_", " ")}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <RequestSection view={view} described={described} />
      <h2>Request and runs</h2>
      {runs.length === 0
        ? <p>No run yet for this project run.</p>
        : runs.map((run) => (
          <RunSection key={run.id} run={run} session={session} operator={operator} />
        ))}
      {view.staging === null ? null : (
        <>
          <h2>Staged for publishing</h2>
          <p>
            Staging digest: <code>{view.staging.staging_digest ?? "nothing staged yet"}</code>
          </p>
          <StagingDetails details={view.staging} />
        </>
      )}
      <h2>Your decision</h2>
      {view.allowed_actions.length === 0
        ? <p>There is nothing you may decide on this release now.</p>
        : (
          view.allowed_actions.map((action, index) => {
            const key = `${action.gate}|${action.approval_type}`;
            return (
              <form
                key={key}
                method="post"
                data-action={key}
                action={`${UI_PREFIX}/releases/${encodeURIComponent(view.id)}/decisions`}
              >
                <input type="hidden" name="csrf" value={session.csrf} />
                <input type="hidden" name="action" value={key} />
                <fieldset>
                  <legend>
                    Gate {action.gate}, as {action.approval_type}
                  </legend>
                  {action.decisions.map((kind, choice) => (
                    <label key={kind} class="choice">
                      <input type="radio" name="decision" value={kind} checked={choice === 0} />
                      {" "}
                      {kind.replace("_", " ")}
                    </label>
                  ))}
                  <label for={`comment-${index}`}>Comment (kept only as its SHA-256)</label>
                  <textarea id={`comment-${index}`} name="comment" rows={3} maxlength={2000}>
                  </textarea>
                  <button type="submit">Record decision</button>
                </fieldset>
              </form>
            );
          })
        )}
    </Page>
  );
}

/**
 * The release's revocation: who revoked it, why, when, and a summary of the deletion certificate; or,
 * for a person with a revocation role, the form to revoke it.
 */
function RevocationSection(props: { view: ReleaseView; session: Session; revoker: boolean }) {
  const { view, session } = props;
  const revocation = view.revocation;
  if (revocation !== null) {
    const by = revocation.requested_by;
    const certificate = revocation.certificate;
    return (
      <section aria-labelledby="revocation-heading">
        <h2 id="revocation-heading">Revocation</h2>
        <dl>
          <dt>Asked by</dt>
          <dd>
            {by.kind === "system" ? `the gateway (${by.id})` : `${by.kind} ${by.id}`} at{" "}
            {revocation.requested_at}
          </dd>
          <dt>Reason</dt>
          <dd>{revocation.reason}</dd>
          <dt>Completed</dt>
          <dd>{revocation.completed_at ?? "not yet: the deletion is retried"}</dd>
        </dl>
        {certificate === null ? null : (
          <>
            <h3>Deletion certificate</h3>
            <dl class="certificate">
              {Object.entries(certificate).filter(([, value]) =>
                value === null || ["string", "number", "boolean"].includes(typeof value)
              ).flatMap(([name, value]) => [
                <dt key={`${name}-name`}>{name}</dt>,
                <dd key={`${name}-value`}>{String(value)}</dd>,
              ])}
            </dl>
          </>
        )}
      </section>
    );
  }
  if (!props.revoker) return null;
  return (
    <section aria-labelledby="revocation-heading">
      <h2 id="revocation-heading">Revoke</h2>
      <form method="post" action={`${UI_PREFIX}/releases/${encodeURIComponent(view.id)}/revoke`}>
        <input type="hidden" name="csrf" value={session.csrf} />
        <label for="revoke-reason">
          Why (the published data is deleted; this cannot be undone)
        </label>
        <textarea
          id="revoke-reason"
          name="reason"
          rows={3}
          required
          maxlength={MAX_REVOCATION_REASON_LENGTH}
        >
        </textarea>
        <button type="submit">Revoke release</button>
      </form>
    </section>
  );
}

interface StagedTable {
  dataset?: string;
  table?: string;
  thresholds?: { small_cell_threshold?: number };
  disclosure?: {
    rows?: number;
    columns?: readonly {
      name: string;
      kind: string;
      nulls: number;
      distinct: { value: number; estimate: boolean };
      min: string | null;
      max: string | null;
      categories: readonly { value: string; count: number; small: boolean }[] | null;
      small_categories: number;
    }[];
  };
}

/** The disclosure pre-checks of each staged table, small cells highlighted. */
function StagingDetails(props: { details: Record<string, unknown> }) {
  const tables = (Array.isArray(props.details.tables) ? props.details.tables : []) as StagedTable[];
  const unchecked = Array.isArray(props.details.unchecked_datasets)
    ? props.details.unchecked_datasets.map(String)
    : [];
  return (
    <>
      {unchecked.length === 0
        ? null
        : <p class="error">Not checked for disclosure: {unchecked.join(", ")}</p>}
      {tables.map((table) => (
        <section>
          <h3>
            {table.dataset ?? ""}.{table.table ?? ""}: {table.disclosure?.rows ?? "?"} rows
          </h3>
          <p>Small cell threshold: {table.thresholds?.small_cell_threshold ?? "?"}</p>
          <table>
            <ColumnHeads
              names={[
                "Column",
                "Kind",
                "Nulls",
                "Distinct",
                "Min",
                "Max",
                "Categories (small cells highlighted)",
              ]}
            />
            <tbody>
              {(table.disclosure?.columns ?? []).map((column) => (
                <tr>
                  <td>{column.name}</td>
                  <td>{column.kind}</td>
                  <td>{column.nulls}</td>
                  <td>{column.distinct.estimate ? "~" : ""}{column.distinct.value}</td>
                  <td>{column.min ?? ""}</td>
                  <td>{column.max ?? ""}</td>
                  <td>
                    {column.small_categories > 0
                      ? <strong class="small-cell">{column.small_categories} small</strong>
                      : null}
                    <ul class="plain">
                      {(column.categories ?? []).map((category) => (
                        <li class={category.small ? "small-cell" : undefined}>
                          {category.value}: {category.count}
                          {category.small ? " (small cell)" : ""}
                        </li>
                      ))}
                    </ul>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      ))}
    </>
  );
}

/** A run: its dataset, state and each table's progress; live with JavaScript; cancel or resume for operators. */
function RunSection(props: { run: RunView; session: Session; operator: boolean }) {
  const { run, session, operator } = props;
  const active = run.state === "queued" || run.state === "running";
  return (
    <section class="run" data-run-events={active ? run.id : undefined}>
      <h3>
        {run.action} {run.project_name} {run.project_start_time}:{" "}
        <span data-run-state="">{run.state}</span>
      </h3>
      {run.action === "publish"
        ? (
          <p>
            Run <code>{run.id}</code> publishes what is staged to {run.destination.type}{" "}
            {run.destination.name}
          </p>
        )
        : (
          <p>
            Run <code>{run.id}</code>, source schema <code>{run.dataset.schema_name}</code>
            {run.dataset.source_engine === null ? "" : ` (${run.dataset.source_engine})`}, tables
            {" "}
            {run.dataset.tables === null ? "all" : run.dataset.tables.join(", ")}, to{" "}
            {run.destination.type} {run.destination.name}
            {run.destination.format === null ? "" : ` as ${run.destination.format}`}
          </p>
        )}
      {run.tables.length === 0 ? null : (
        <table>
          <ColumnHeads names={["Table", "Progress", "Rows and bytes", "Estimate", "SHA-512"]} />
          <tbody>
            {run.tables.map((table) => <TableRow key={table.name} table={table} />)}
          </tbody>
        </table>
      )}
      {operator && active
        ? (
          <form method="post" action={`${UI_PREFIX}/runs/${encodeURIComponent(run.id)}/cancel`}>
            <input type="hidden" name="csrf" value={session.csrf} />
            <button type="submit">Cancel run {run.id.slice(0, 8)}</button>
          </form>
        )
        : null}
      {operator && run.state === "interrupted"
        ? (
          <form method="post" action={`${UI_PREFIX}/runs/${encodeURIComponent(run.id)}/resume`}>
            <input type="hidden" name="csrf" value={session.csrf} />
            <button type="submit">Resume run {run.id.slice(0, 8)}</button>
          </form>
        )
        : null}
    </section>
  );
}

function TableRow(props: { table: TableProgress }) {
  const { table } = props;
  const expected = table.expected_rows?.value ?? null;
  const done = table.state === "done";
  const max = done ? 1 : expected ?? 0;
  const value = done ? 1 : Math.min(table.rows, expected ?? 0);
  return (
    <tr data-table={table.name}>
      <td>{table.name}</td>
      <td>
        {max > 0
          ? (
            <progress max={max} value={value} aria-label={`${table.name} progress`}>
              {table.state}
            </progress>
          )
          : (
            <progress aria-label={`${table.name} progress`}>
              {table.state}
            </progress>
          )} <span data-table-state="">{table.state}</span>
      </td>
      <td data-progress-text="">{table.rows} rows, {table.bytes} bytes</td>
      <td>{expected === null ? "none" : `about ${expected} rows`}</td>
      <td>
        <code>{table.sha512 ?? ""}</code>
      </td>
    </tr>
  );
}

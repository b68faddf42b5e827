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
import { AppError } from "../../../domain/errors.ts";
import { DECISION_KINDS, type DecisionKind } from "../../../domain/release.ts";
import type { Person } from "../../../ports/identity.ts";
import { statusOf } from "../../_shared/http_errors.ts";
import type { Logger } from "../../_shared/log.ts";
import { requestIdOf } from "../../_shared/request_ids.ts";
import { type Session, SessionStore } from "./sessions.ts";
import { DASHBOARD_SCRIPT, DASHBOARD_STYLE } from "./static.ts";

/** Where the dashboard is served. */
export const UI_PREFIX = "/ui";

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
  /** The clock in ms; for tests. */
  readonly now?: () => number;
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
    c.header("Referrer-Policy", "no-referrer");
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
    if (c.req.method !== "POST") return await next();
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
    return c.html(releasePage(session, view, c.req.query("done") === "1" ? "Recorded." : null));
  });

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
      return c.html(releasePage(session, view, null, error.message), status);
    }
    return c.redirect(`${UI_PREFIX}/releases/${encodeURIComponent(id)}?done=1`, 303);
  });

  ui.get(UI_PREFIX, (c) => c.redirect(`${UI_PREFIX}/`, 301));
  app.route("/", ui);
}

function refererOrigin(referer: string | undefined): string | undefined {
  if (referer === undefined || !URL.canParse(referer)) return undefined;
  return new URL(referer).origin;
}

// ---- pages

function Page(
  props: { session?: Session | undefined; title: string; current?: string; children?: Child },
) {
  const session = props.session;
  const nav: [string, string, string][] = [["awaiting", `${UI_PREFIX}/`, "Awaiting me"]];
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

function ReleaseTable(props: { releases: readonly ReleaseView[] }) {
  return (
    <table>
      <caption class="visually-hidden">Releases</caption>
      <thead>
        <tr>
          <th scope="col">Project</th>
          <th scope="col">Run started</th>
          <th scope="col">Destination</th>
          <th scope="col">Asked</th>
          <th scope="col">Gates</th>
        </tr>
      </thead>
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

function releasePage(
  session: Session,
  view: ReleaseView,
  notice: string | null,
  refusal?: string,
) {
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
      </dl>
      <h2>Gates</h2>
      <table>
        <thead>
          <tr>
            <th scope="col">Gate</th>
            <th scope="col">Before</th>
            <th scope="col">Met</th>
            <th scope="col">Still missing</th>
          </tr>
        </thead>
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
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Who</th>
              <th scope="col">Gate</th>
              <th scope="col">Type</th>
              <th scope="col">Decision</th>
            </tr>
          </thead>
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
          <form
            method="post"
            action={`${UI_PREFIX}/releases/${encodeURIComponent(view.id)}/decisions`}
          >
            <input type="hidden" name="csrf" value={session.csrf} />
            <label for="action">Gate and approval type</label>
            <select id="action" name="action">
              {view.allowed_actions.map((action) => (
                <option value={`${action.gate}|${action.approval_type}`}>
                  {action.gate}: {action.approval_type}
                </option>
              ))}
            </select>
            <fieldset>
              <legend>Decision</legend>
              {DECISION_KINDS.map((kind, index) => (
                <label class="choice">
                  <input type="radio" name="decision" value={kind} checked={index === 0} />{" "}
                  {kind.replace("_", " ")}
                </label>
              ))}
            </fieldset>
            <label for="comment">Comment (kept only as its SHA-256)</label>
            <textarea id="comment" name="comment" rows={3} maxlength={2000}></textarea>
            <button type="submit">Record decision</button>
          </form>
        )}
    </Page>
  );
}

/** What the publish service reported about staging, shown as escaped JSON until richer tables land. */
function StagingDetails(props: { details: Record<string, unknown> }) {
  const { staging_digest: _digest, ...rest } = props.details;
  if (Object.keys(rest).length === 0) return null;
  return (
    <details>
      <summary>Disclosure pre-checks and staged files</summary>
      <pre>{JSON.stringify(rest, null, 2)}</pre>
    </details>
  );
}

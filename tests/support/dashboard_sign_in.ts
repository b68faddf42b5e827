/**
 * A cookie-keeping HTTP client for the dashboard's integration tests: it follows the OpenID Connect sign-in
 * through the dashboard (an in-process app) and the demo identity provider (a real server), as a browser
 * without JavaScript would.
 *
 * @module
 */
import { DEMO_PASSWORD } from "../../tools/demo_identity_provider.ts";

/** Anything with Hono's `request`. */
export interface RequestableApp {
  request(input: string, init?: RequestInit): Response | Promise<Response>;
}

/** A browser-like client of one dashboard app. */
export class DashboardClient {
  /** Cookies by origin, then name. */
  readonly cookies = new Map<string, Map<string, string>>();
  /** Every `Set-Cookie` header the dashboard sent, as sent. */
  readonly setCookies: string[] = [];

  constructor(readonly app: RequestableApp, readonly baseUrl: string) {}

  /** A request to the dashboard (a path under the base URL), with its cookies. */
  async request(path: string, init: RequestInit = {}): Promise<Response> {
    const url = new URL(path, this.baseUrl);
    const headers = new Headers(init.headers);
    const jar = this.#cookieHeader(url);
    if (jar !== "") headers.set("cookie", jar);
    const response = await this.app.request(url.toString(), { ...init, headers });
    this.setCookies.push(...response.headers.getSetCookie());
    this.#keep(url, response);
    return response;
  }

  /** A form POST to the dashboard, from its own origin unless `origin` says otherwise. */
  async post(path: string, form: Record<string, string>, origin?: string): Promise<Response> {
    return await this.request(path, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        origin: origin ?? new URL(this.baseUrl).origin,
      },
      body: new URLSearchParams(form).toString(),
    });
  }

  /** Signs in as a demo person at the demo provider; returns the page the sign-in lands on. */
  async signIn(login: string, password = DEMO_PASSWORD): Promise<Response> {
    const start = await this.request("/ui/login");
    if (start.status !== 302) throw new Error(`/ui/login answered ${start.status}`);
    let location = start.headers.get("location") ?? "";
    let posted = false;
    for (let hop = 0; hop < 10; hop++) {
      if (location.startsWith(this.baseUrl)) {
        const landed = await this.request(location.slice(this.baseUrl.length));
        if (landed.status !== 303) return landed;
        return await this.request(landed.headers.get("location") ?? "/ui/");
      }
      const url = new URL(location);
      let response = await this.#idp(url, { redirect: "manual" });
      if (response.status === 200 && !posted && url.pathname.startsWith("/interaction/")) {
        await response.body?.cancel();
        posted = true;
        response = await this.#idp(url, {
          method: "POST",
          redirect: "manual",
          headers: { "content-type": "application/x-www-form-urlencoded" },
          body: new URLSearchParams({ login, password }).toString(),
        });
      }
      await response.body?.cancel();
      const next = response.headers.get("location");
      if (next === null) throw new Error(`the identity provider answered ${response.status}`);
      location = new URL(next, url).toString();
    }
    throw new Error("too many redirects while signing in");
  }

  /** The value of the hidden `csrf` field on a page. */
  static csrfOf(html: string): string {
    const match = /name="csrf" value="([^"]+)"/.exec(html);
    if (match?.[1] === undefined) throw new Error("no csrf field on the page");
    return match[1];
  }

  async #idp(url: URL, init: RequestInit): Promise<Response> {
    const headers = new Headers(init.headers);
    const jar = this.#cookieHeader(url);
    if (jar !== "") headers.set("cookie", jar);
    const response = await fetch(url, { ...init, headers });
    this.#keep(url, response);
    return response;
  }

  #cookieHeader(url: URL): string {
    const jar = this.cookies.get(url.origin);
    return jar === undefined ? "" : [...jar].map(([name, value]) => `${name}=${value}`).join("; ");
  }

  #keep(url: URL, response: Response): void {
    const jar = this.cookies.get(url.origin) ?? new Map<string, string>();
    this.cookies.set(url.origin, jar);
    for (const line of response.headers.getSetCookie()) {
      const [pair = "", ...attributes] = line.split(";");
      const at = pair.indexOf("=");
      const name = pair.slice(0, at).trim();
      const value = pair.slice(at + 1).trim();
      const expired = value === "" ||
        attributes.some((a) => /^\s*max-age=0\s*$/i.test(a));
      if (expired) jar.delete(name);
      else jar.set(name, value);
    }
  }
}

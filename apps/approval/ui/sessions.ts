/**
 * The dashboard's server-side sessions and pending sign-ins, kept in memory with an expiry: one replica
 * only (a second replica would not know the first one's sessions; `docs/ui.md`). A restart signs everyone
 * out. The browser holds only a random id (32 bytes) in an `HttpOnly` cookie.
 *
 * @module
 */
import type { PendingLogin } from "../../../adapters/oidc/oidc_login.ts";
import { randomToken } from "../../../adapters/oidc/oidc_login.ts";
import type { Person } from "../../../ports/identity.ts";

/** A signed-in person's session. */
export interface Session {
  readonly id: string;
  readonly person: Person;
  /** The synchronizer token every form of this session carries. */
  readonly csrf: string;
  readonly expiresAt: number;
}

/** How long a sign-in may take at the identity provider (10 min). */
export const PENDING_LOGIN_TTL_MS = 10 * 60_000;

/** At most this many sign-ins may be pending at once; the oldest is dropped beyond it. */
export const MAX_PENDING_LOGINS = 10_000;

/** Sessions and pending sign-ins; see the module documentation. */
export class SessionStore {
  readonly #sessions = new Map<string, Session>();
  readonly #pending = new Map<string, PendingLogin & { readonly expiresAt: number }>();
  readonly #ttlMs: number;
  readonly #now: () => number;

  constructor(options: { ttlMs: number; now?: () => number }) {
    this.#ttlMs = options.ttlMs;
    this.#now = options.now ?? Date.now;
  }

  /** Keeps a sign-in under way; returns the id for the browser's sign-in cookie. */
  holdLogin(pending: PendingLogin): string {
    this.#sweep();
    const id = randomToken();
    if (this.#pending.size >= MAX_PENDING_LOGINS) {
      const oldest = this.#pending.keys().next().value;
      if (oldest !== undefined) this.#pending.delete(oldest);
    }
    this.#pending.set(id, { ...pending, expiresAt: this.#now() + PENDING_LOGIN_TTL_MS });
    return id;
  }

  /** Takes (and forgets) a pending sign-in; `undefined` when unknown or expired. */
  takeLogin(id: string): PendingLogin | undefined {
    const pending = this.#pending.get(id);
    this.#pending.delete(id);
    if (pending === undefined || pending.expiresAt <= this.#now()) return undefined;
    return pending;
  }

  /** Opens a session for `person`. */
  open(person: Person): Session {
    this.#sweep();
    const session = {
      id: randomToken(),
      person,
      csrf: randomToken(),
      expiresAt: this.#now() + this.#ttlMs,
    };
    this.#sessions.set(session.id, session);
    return session;
  }

  /** The live session with this id, or `undefined` (unknown, ended or expired). */
  get(id: string): Session | undefined {
    const session = this.#sessions.get(id);
    if (session === undefined) return undefined;
    if (session.expiresAt <= this.#now()) {
      this.#sessions.delete(id);
      return undefined;
    }
    return session;
  }

  /** Ends a session (sign-out). */
  end(id: string): void {
    this.#sessions.delete(id);
  }

  /** Forgets everything expired. */
  #sweep(): void {
    const now = this.#now();
    for (const [id, session] of this.#sessions) {
      if (session.expiresAt <= now) this.#sessions.delete(id);
    }
    for (const [id, pending] of this.#pending) {
      if (pending.expiresAt <= now) this.#pending.delete(id);
    }
  }
}

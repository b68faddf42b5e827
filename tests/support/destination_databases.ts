/**
 * A sandbox for PostgreSQL destination tests: a fresh database with a random name in the local
 * PostgreSQL, a loader login that may create schemas in it, and a read-only login (OPAL's), all dropped by
 * `cleanup()`.
 *
 * @module
 */
import postgres, { type Sql } from "postgres";
import { HttpOpalClient } from "../../adapters/opal/http_opal_client.ts";
import {
  connectPostgresDestination,
  type PostgresDestinationOptions,
} from "../../adapters/postgres/postgres_destination.ts";
import type { PostgresqlDestination } from "../../application/destinations.ts";
import { postgresAdmin, quotePostgres } from "./databases.ts";
import { LOCAL_POSTGRES_TLS, POSTGRES, randomName } from "./services.ts";

/** A destination database with its two logins. Everything is dropped by {@link cleanup}. */
export class DestinationSandbox {
  /** Superuser connection to the server's default database (creates and drops the database). */
  readonly #server = postgresAdmin();
  readonly database = randomName("cr8_dest");
  readonly loader = randomName("cr8_loader");
  readonly loaderPassword = crypto.randomUUID();
  readonly reader = randomName("cr8_opal_ro");
  readonly readerPassword = crypto.randomUUID();
  readonly #clients: Sql[] = [];
  #created = false;

  /** Creates the database and the two logins; the loader gets CONNECT and CREATE on the database. */
  async create(): Promise<void> {
    this.#created = true;
    const db = quotePostgres(this.database);
    await this.#server.unsafe(
      `create role ${quotePostgres(this.loader)} login password '${this.loaderPassword}'`,
    );
    await this.#server.unsafe(
      `create role ${quotePostgres(this.reader)} login password '${this.readerPassword}'`,
    );
    await this.#server.unsafe(`create database ${db}`);
    await this.#server.unsafe(
      `revoke all on database ${db} from public;
       grant connect, create on database ${db} to ${quotePostgres(this.loader)};
       grant connect on database ${db} to ${quotePostgres(this.reader)}`,
    );
  }

  /** The destination options for the loader login. */
  options(overrides: Partial<PostgresDestinationOptions> = {}): PostgresDestinationOptions {
    return {
      host: POSTGRES.host,
      port: POSTGRES.port,
      database: this.database,
      username: this.loader,
      password: this.loaderPassword,
      readOnlyRole: this.reader,
      tls: LOCAL_POSTGRES_TLS,
      connectTimeoutMs: 5_000,
      statementTimeoutMs: 30_000,
      ...overrides,
    };
  }

  /** A superuser connection to the destination database, for inspection; ended by {@link cleanup}. */
  admin(): Sql {
    return this.#connect(POSTGRES.user, undefined);
  }

  /** A connection as the read-only login; ended by {@link cleanup}. */
  asReader(): Sql {
    return this.#connect(this.reader, this.readerPassword);
  }

  /** A connection as the loader login; ended by {@link cleanup}. */
  asLoader(): Sql {
    return this.#connect(this.loader, this.loaderPassword);
  }

  #connect(username: string, password: string | undefined): Sql {
    const sql = postgres({
      host: POSTGRES.host,
      port: POSTGRES.port,
      database: this.database,
      username,
      ...(password === undefined ? {} : { password }),
      max: 1,
      onnotice: () => {},
    });
    this.#clients.push(sql);
    return sql;
  }

  async cleanup(): Promise<void> {
    const errors: unknown[] = [];
    for (const sql of this.#clients) await sql.end({ timeout: 0 }).catch((e) => errors.push(e));
    if (this.#created) {
      await this.#server.unsafe(
        `drop database if exists ${quotePostgres(this.database)} with (force)`,
      ).catch((e) => errors.push(e));
      for (const role of [this.loader, this.reader]) {
        await this.#server.unsafe(`drop role if exists ${quotePostgres(role)}`).catch((e) =>
          errors.push(e)
        );
      }
    }
    await this.#server.end({ timeout: 5 });
    if (errors.length > 0) {
      throw new AggregateError(errors, "Cannot clean up the destination sandbox");
    }
  }
}

/**
 * The PostgreSQL destination of a sandbox, as the publish service configures one: the loader login, an
 * OPAL (a fake) signed into as its administrator, and the read-only login OPAL's resources use.
 */
export function sandboxPostgresqlDestination(
  sandbox: DestinationSandbox,
  opal: { readonly url: string; readonly admin: { username: string; password: string } },
): PostgresqlDestination {
  return {
    connect: () => connectPostgresDestination(sandbox.options()),
    opal: () =>
      Promise.resolve(
        new HttpOpalClient({
          baseUrl: opal.url,
          username: opal.admin.username,
          password: opal.admin.password,
          timeoutMs: 5_000,
        }),
      ),
    resourceAccess: () =>
      Promise.resolve({
        database: { host: "127.0.0.1", port: 5432, database: sandbox.database },
        readOnly: { username: sandbox.reader, password: sandbox.readerPassword },
      }),
  };
}

import assert from "node:assert/strict";
import postgres from "postgres";
import { SchemaNotFoundError, SourceUnavailableError } from "../../ports/source_database.ts";
import {
  FIXTURE_SCHEMA_COMMENT,
  sourceDatabaseContract,
  type SourceDatabaseFixture,
} from "../../tests/contracts/source_database_contract.ts";
import { ignorePostgres, POSTGRES, randomName } from "../../tests/support/services.ts";
import {
  postgresAdmin,
  postgresConnectionOptions,
  PostgresSandbox,
  quotePostgres,
} from "../../tests/support/databases.ts";
import {
  connectPostgres,
  POSTGRES_APPLICATION_NAME,
  postgresClientOptions,
} from "./postgres_source_database.ts";

/**
 * The contract's standard fixture in PostgreSQL. `patients` also had a column dropped after creation, so
 * its attribute numbers have a gap that must not show.
 */
const STANDARD_FIXTURE = `
  comment on schema $s is '${FIXTURE_SCHEMA_COMMENT}';
  create table $s.patients (
    id integer primary key,
    nhs_number varchar(10) not null,
    birth_date date,
    legacy_code text,
    weight numeric(6,2)
  );
  alter table $s.patients drop column legacy_code;
  comment on table $s.patients is 'One row per patient';
  comment on column $s.patients.nhs_number is 'NHS number';
  create table $s.visits (
    visit_no integer not null,
    patient_id integer not null,
    visited_on date not null,
    notes text,
    primary key (patient_id, visit_no)
  );
  comment on column $s.visits.notes is 'Free text';
  create table $s.audit_log (event varchar(100) not null, logged_at timestamp);
  create view $s.patient_names as select id, nhs_number from $s.patients;
`;

Deno.test({
  name: "PostgresSourceDatabase passes the SourceDatabase contract",
  ignore: ignorePostgres,
  fn: async (t) => {
    await sourceDatabaseContract(t, {
      name: "PostgresSourceDatabase",
      setUp: async (): Promise<SourceDatabaseFixture> => {
        const sandbox = new PostgresSandbox();
        const schema = randomName("cr8_contract");
        try {
          await sandbox.createRole();
          await sandbox.createSchema(schema, STANDARD_FIXTURE);
        } catch (e) {
          await sandbox.cleanup();
          throw e;
        }
        return {
          schema,
          connect: () => connectPostgres(sandbox.connectOptions()),
          cleanup: () => sandbox.cleanup(),
        };
      },
    });
  },
});

Deno.test({
  name: "PostgresSourceDatabase describeSchema() describes identifiers that need quoting",
  ignore: ignorePostgres,
  fn: async () => {
    const sandbox = new PostgresSandbox();
    const schema = `${randomName("cr8_odd")}_Odd'"Schema`;
    try {
      await sandbox.createRole();
      await sandbox.createSchema(
        schema,
        `comment on schema $s is 'It''s odd';
         create type $s.mood as enum ('ok', 'meh');
         create table $s."Mixed-Case$1" (
           "Id" bigint generated always as identity,
           "select" varchar(50) not null,
           "two words" numeric(10,2),
           "it's" timestamp with time zone,
           mood $s.mood,
           tags text[],
           primary key ("select", "Id")
         );
         comment on table $s."Mixed-Case$1" is 'Quoted ''name''';
         comment on column $s."Mixed-Case$1"."two words" is 'Two "words"';
         create table $s.lower (id integer);
         create materialized view $s.summary as select count(*) as n from $s."Mixed-Case$1";
         create table $s.events (id integer, at date not null) partition by range (at);`,
      );
      await using db = await connectPostgres(sandbox.connectOptions());

      const catalog = await db.describeSchema(schema);
      assert.equal(catalog.name, schema);
      assert.equal(catalog.description, "It's odd");
      // Code-unit order: upper case sorts before lower case.
      assert.deepEqual(
        catalog.tables.map((t) => [t.name, t.kind]),
        [["Mixed-Case$1", "table"], ["events", "table"], ["lower", "table"], ["summary", "view"]],
      );
      const mixed = catalog.tables[0];
      assert.ok(mixed);
      assert.equal(mixed.description, "Quoted 'name'");
      assert.deepEqual(mixed.primaryKey, ["select", "Id"]);
      assert.deepEqual(
        mixed.columns.map((c) => [c.name, c.dataType, c.nullable, c.description]),
        [
          ["Id", "bigint", false, null],
          ["select", "character varying(50)", false, null],
          ["two words", "numeric(10,2)", true, 'Two "words"'],
          ["it's", "timestamp with time zone", true, null],
          ["mood", `${quotePostgres(schema)}.mood`, true, null],
          ["tags", "text[]", true, null],
        ],
      );

      const only = await db.describeSchema(schema, { tables: ["Mixed-Case$1"] });
      assert.deepEqual(only.tables, [mixed]);
      assert.deepEqual((await db.describeSchema(schema, { tables: [] })).tables, []);
    } finally {
      await sandbox.cleanup();
    }
  },
});

Deno.test({
  name: "PostgresSourceDatabase describeSchema() hides a schema the user has no USAGE on",
  ignore: ignorePostgres,
  fn: async () => {
    const sandbox = new PostgresSandbox();
    const schema = randomName("cr8_private");
    try {
      await sandbox.createRole();
      await sandbox.createSchema(schema, "create table $s.secret (id integer);", false);
      await using db = await connectPostgres(sandbox.connectOptions());
      await assert.rejects(db.describeSchema(schema), SchemaNotFoundError);
    } finally {
      await sandbox.cleanup();
    }
  },
});

Deno.test({
  name: "connectPostgres() sets the statement timeout and application name on the session",
  ignore: ignorePostgres,
  fn: async () => {
    const options = postgresConnectionOptions({ statementTimeoutMs: 200 });
    const raw = postgres(postgresClientOptions(options));
    try {
      const [setting] = await raw<{ timeout: string; app: string }[]>`
        select current_setting('statement_timeout') as timeout,
               current_setting('application_name') as app`;
      assert.deepEqual(setting, { timeout: "200ms", app: POSTGRES_APPLICATION_NAME });
      const started = performance.now();
      await assert.rejects(raw`select pg_sleep(2)`, { code: "57014" });
      assert.ok(performance.now() - started < 1_500, "the statement ran past its timeout");
    } finally {
      await raw.end({ timeout: 5 });
    }

    // And connectPostgres() uses exactly these options: the session shows up under our name.
    const admin = postgresAdmin();
    try {
      await using _db = await connectPostgres(options);
      const [row] = await admin<{ n: string }[]>`
        select count(*)::text as n from pg_stat_activity
         where application_name = ${POSTGRES_APPLICATION_NAME} and usename = ${POSTGRES.user}`;
      assert.notEqual(row?.n, "0");
    } finally {
      await admin.end({ timeout: 5 });
    }
  },
});

Deno.test({
  name: "connectPostgres() reports an unknown database as SourceUnavailableError",
  ignore: ignorePostgres,
  fn: async () => {
    const password = `pw-${crypto.randomUUID()}`;
    const error = await connectPostgres(
      postgresConnectionOptions({ database: randomName("cr8_nodb"), password }),
    ).then(() => assert.fail("expected a SourceUnavailableError"), (e: unknown) => e);
    assert.ok(error instanceof SourceUnavailableError, String(error));
    assert.match(error.message, /^Cannot connect to PostgreSQL at [^:]+:\d+: .*does not exist/);
    assert.ok(!error.message.includes(password));
    assert.ok(error.cause instanceof Error);
  },
});

Deno.test("connectPostgres() fails fast when nothing listens on the port", async () => {
  const started = performance.now();
  const error = await connectPostgres(
    postgresConnectionOptions({ host: "127.0.0.1", port: 1, connectTimeoutMs: 500 }),
  ).then(() => assert.fail("expected a SourceUnavailableError"), (e: unknown) => e);
  assert.ok(error instanceof SourceUnavailableError, String(error));
  assert.match(error.message, /^Cannot connect to PostgreSQL at 127\.0\.0\.1:1: /);
  assert.ok(performance.now() - started < 2_000);
});

Deno.test("connectPostgres() gives up after connectTimeoutMs on a silent server", async () => {
  await using server = silentServer();
  const started = performance.now();
  const error = await connectPostgres(
    postgresConnectionOptions({ host: "127.0.0.1", port: server.port, connectTimeoutMs: 300 }),
  ).then(() => assert.fail("expected a SourceUnavailableError"), (e: unknown) => e);
  const elapsed = performance.now() - started;
  assert.ok(error instanceof SourceUnavailableError, String(error));
  assert.match(error.message, /CONNECT_TIMEOUT/);
  assert.ok(elapsed >= 250 && elapsed < 3_000, `took ${elapsed}ms`);
});

Deno.test("connectPostgres() reports a refused password without revealing it", async () => {
  // The project's PostgreSQL trusts 127.0.0.1, so a wire-level fake refuses the password instead. It
  // even echoes the password in its error, to prove the adapter keeps it out of the message.
  const password = `s3cret-${crypto.randomUUID()}`;
  await using server = passwordRefusingServer();
  const error = await connectPostgres(
    postgresConnectionOptions({ port: server.port, username: "reader", password }),
  ).then(() => assert.fail("expected a SourceUnavailableError"), (e: unknown) => e);
  assert.ok(error instanceof SourceUnavailableError, String(error));
  assert.equal(await server.receivedPassword, password);
  assert.match(
    error.message,
    /^Cannot connect to PostgreSQL at 127\.0\.0\.1:\d+: .*password authentication failed/,
  );
  assert.ok(!error.message.includes(password), error.message);
});

interface FakeServer extends AsyncDisposable {
  readonly port: number;
}

/** Accepts connections and never answers. */
function silentServer(): FakeServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const connections: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) connections.push(conn);
  })();
  return {
    port: listener.addr.port,
    async [Symbol.asyncDispose]() {
      listener.close();
      await accepting.catch(() => {});
      for (const conn of connections) {
        try {
          conn.close();
        } catch {
          // already closed by the client
        }
      }
    },
  };
}

/**
 * Speaks just enough of the PostgreSQL protocol to refuse a password: declines TLS, asks for a cleartext
 * password, then answers with SQLSTATE 28P01.
 */
function passwordRefusingServer(): FakeServer & { receivedPassword: Promise<string> } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const received = Promise.withResolvers<string>();
  const serving = (async () => {
    const conn = await listener.accept();
    try {
      const reader = new MessageReader(conn);
      let length = await reader.int32();
      let code = await reader.int32();
      if (code === 80877103) { // SSLRequest
        await conn.write(new TextEncoder().encode("N"));
        length = await reader.int32();
        code = await reader.int32();
      }
      await reader.bytes(length - 8); // startup parameters
      await conn.write(message("R", int32(3))); // AuthenticationCleartextPassword
      const type = await reader.bytes(1);
      assert.equal(String.fromCharCode(type[0] ?? 0), "p");
      const body = await reader.bytes((await reader.int32()) - 4);
      const password = new TextDecoder().decode(body.subarray(0, body.length - 1));
      received.resolve(password);
      const fields = [
        "SFATAL",
        "VFATAL",
        "C28P01",
        `Mpassword authentication failed for user "reader" (password "${password}")`,
      ];
      await conn.write(
        message("E", new TextEncoder().encode(fields.map((f) => `${f}\0`).join("") + "\0")),
      );
    } catch (e) {
      received.reject(e);
    } finally {
      conn.close();
    }
  })();
  return {
    port: listener.addr.port,
    receivedPassword: received.promise,
    async [Symbol.asyncDispose]() {
      await serving;
      listener.close();
    },
  };
}

function int32(n: number): Uint8Array {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setInt32(0, n);
  return bytes;
}

function message(type: string, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + body.length);
  out[0] = type.charCodeAt(0);
  out.set(int32(4 + body.length), 1);
  out.set(body, 5);
  return out;
}

/** Reads exact byte counts from a connection. */
class MessageReader {
  #buffer = new Uint8Array(0);
  readonly #conn: Deno.Conn;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  async bytes(n: number): Promise<Uint8Array> {
    while (this.#buffer.length < n) {
      const chunk = new Uint8Array(4096);
      const read = await this.#conn.read(chunk);
      if (read === null) throw new Error("Cannot read from the client: connection closed");
      const next = new Uint8Array(this.#buffer.length + read);
      next.set(this.#buffer);
      next.set(chunk.subarray(0, read), this.#buffer.length);
      this.#buffer = next;
    }
    const out = this.#buffer.slice(0, n);
    this.#buffer = this.#buffer.slice(n);
    return out;
  }

  async int32(): Promise<number> {
    const b = await this.bytes(4);
    return new DataView(b.buffer, b.byteOffset, 4).getInt32(0);
  }
}

/**
 * Verified TLS to MySQL and MariaDB sources, through a TLS-terminating proxy in front of the local
 * MariaDB (which has no TLS; `tests/support/mysql_tls_proxy.ts` takes part in the handshake), with
 * certificates of a throw-away CA. The same local server, reached directly, is the server without TLS
 * that the default settings must refuse.
 */
import assert from "node:assert/strict";
import type { TableExtract } from "../../domain/catalog.ts";
import { assertConnectionRefused } from "../../tests/support/connect_failures.ts";
import { readAll } from "../../tests/contracts/source_database_contract.ts";
import { mysqlConnectionOptions, MysqlSandbox } from "../../tests/support/databases.ts";
import {
  makeTestCertificates,
  removeTestCertificates,
  type TestCertificates,
} from "../../tests/support/fake_key_vault.ts";
import { type MysqlTlsProxy, startMysqlTlsProxy } from "../../tests/support/mysql_tls_proxy.ts";
import { ignoreMysql, randomName } from "../../tests/support/services.ts";
import { fillWMysql, W_TABLE, wExpectedRows, wMysqlDdl } from "../../tests/support/w_table.ts";
import { connectMysql, type MysqlConnectionOptions } from "./mysql_source_database.ts";
import { MYSQL_SSL_MODES, mysqlSslOptions, type MysqlTlsOptions } from "./mysql_tls.ts";

const ROWS = 1_500;

/** A CA, a proxy whose certificate it signed (for `127.0.0.1` and `localhost`), a second CA. */
interface World {
  readonly certificates: TestCertificates;
  readonly proxy: MysqlTlsProxy;
  readonly otherCa: TestCertificates;
  readonly sandbox: MysqlSandbox;
  /** The sandbox login through a proxy, with the given TLS settings. */
  options(
    proxy: MysqlTlsProxy,
    tls: MysqlTlsOptions | undefined,
    host?: string,
  ): MysqlConnectionOptions;
}

async function withWorld(fn: (world: World) => Promise<void>): Promise<void> {
  const certificates = await makeTestCertificates();
  const otherCa = await makeTestCertificates();
  const sandbox = new MysqlSandbox();
  try {
    await sandbox.createUser();
    await using proxy = await startMysqlTlsProxy(certificates);
    await fn({
      certificates,
      proxy,
      otherCa,
      sandbox,
      options: (through, tls, host = "localhost") => {
        const { tls: _localOptOut, ...options } = sandbox.connectOptions({
          host,
          port: through.port,
        });
        return tls === undefined ? options : { ...options, tls };
      },
    });
  } finally {
    await sandbox.cleanup();
    for (const c of [certificates, otherCa]) await removeTestCertificates(c);
  }
}

Deno.test({
  name: "connectMysql() with VERIFY_IDENTITY reads over TLS checked against the test CA",
  ignore: ignoreMysql,
  fn: () =>
    withWorld(async ({ certificates, proxy, sandbox, options }) => {
      const database = randomName("cr8_tls");
      await sandbox.createDatabase(database, wMysqlDdl());
      await fillWMysql(await sandbox.admin(), database, ROWS);
      await using db = await connectMysql({
        ...options(proxy, { mode: "VERIFY_IDENTITY", ca: certificates.caCert }),
        database,
      });
      const catalog = await db.describeSchema(database);
      const table = catalog.tables.find((x) => x.name === W_TABLE)!;
      const extract: TableExtract = { schema: database, table };
      assert.deepEqual(await readAll(db, extract, 400), wExpectedRows(ROWS));
      assert.equal(proxy.connections.length, 1);
      const [connection] = proxy.connections;
      assert.equal(connection?.askedForTls, true);
      assert.equal(connection?.loggedIn, true);
      assert.equal(connection?.serverName, "localhost");
      assert.match(connection?.tls ?? "", /^TLSv1\.[23]$/);
    }),
});

Deno.test({
  name: "connectMysql() with VERIFY_IDENTITY refuses another CA, another name, and an IP address",
  ignore: ignoreMysql,
  fn: () =>
    withWorld(async ({ certificates, proxy, otherCa, options }) => {
      await assertConnectionRefused(
        connectMysql(options(proxy, { mode: "VERIFY_IDENTITY", ca: otherCa.caCert })),
        /: TLS handshake failed \(ssl-mode VERIFY_IDENTITY\): unable to verify/,
      );
      await assertConnectionRefused(
        connectMysql(options(proxy, { mode: "VERIFY_IDENTITY" })),
        /: TLS handshake failed \(ssl-mode VERIFY_IDENTITY\): unable to verify/,
      );
      // mysql2 would check an IP address against the name "localhost", which this certificate has.
      await assertConnectionRefused(
        connectMysql(
          options(proxy, { mode: "VERIFY_IDENTITY", ca: certificates.caCert }, "127.0.0.1"),
        ),
        /: ssl-mode VERIFY_IDENTITY needs the server's host name, not the IP address 127\.0\.0\.1/,
      );
      // Neither login reached MariaDB, and the IP address was refused before connecting.
      assert.deepEqual(
        proxy.connections.map((c) => [c.askedForTls, c.tls, c.loggedIn]),
        [[true, null, false], [true, null, false]],
      );
    }),
});

Deno.test({
  name: "connectMysql() with VERIFY_IDENTITY refuses a certificate naming another host",
  ignore: ignoreMysql,
  fn: async () => {
    const certificates = await makeTestCertificates({ subjectAltName: "DNS:db.tre.example" });
    const sandbox = new MysqlSandbox();
    try {
      await sandbox.createUser();
      await using proxy = await startMysqlTlsProxy(certificates);
      const { tls: _optOut, ...options } = sandbox.connectOptions({
        host: "localhost",
        port: proxy.port,
      });
      await assertConnectionRefused(
        connectMysql({ ...options, tls: { mode: "VERIFY_IDENTITY", ca: certificates.caCert } }),
        /: TLS handshake failed \(ssl-mode VERIFY_IDENTITY\): .*does not match certificate's altnames/,
      );
      // VERIFY_CA checks the chain only, so the same certificate passes.
      await using db = await connectMysql({
        ...options,
        tls: { mode: "VERIFY_CA", ca: certificates.caCert },
      });
      await db.ping();
      assert.deepEqual(proxy.connections.map((c) => c.loggedIn), [false, true]);
    } finally {
      await sandbox.cleanup();
      await removeTestCertificates(certificates);
    }
  },
});

Deno.test({
  name:
    "connectMysql() with VERIFY_CA takes an IP address but not another CA; REQUIRED checks neither",
  ignore: ignoreMysql,
  fn: () =>
    withWorld(async ({ certificates, proxy, otherCa, options }) => {
      const ping = async (connection: MysqlConnectionOptions) => {
        await using db = await connectMysql(connection);
        await db.ping();
      };
      await ping(options(proxy, { mode: "VERIFY_CA", ca: certificates.caCert }, "127.0.0.1"));
      await assertConnectionRefused(
        connectMysql(options(proxy, { mode: "VERIFY_CA", ca: otherCa.caCert }, "127.0.0.1")),
        /: TLS handshake failed \(ssl-mode VERIFY_CA\): unable to verify/,
      );
      await ping(options(proxy, { mode: "REQUIRED" }, "127.0.0.1"));
      assert.deepEqual(
        proxy.connections.map((c) => [c.tls !== null, c.loggedIn]),
        [[true, true], [false, false], [true, true]],
      );
    }),
});

Deno.test({
  name:
    "connectMysql() by default refuses a server without TLS, and never falls back to plain text",
  ignore: ignoreMysql,
  fn: async () => {
    // The local MariaDB's greeting does not offer TLS. (By host name: the default checks it.)
    const { tls: _optOut, ...local } = mysqlConnectionOptions({ host: "localhost" });
    for (const tls of [undefined, { mode: "VERIFY_CA" }, { mode: "REQUIRED" }] as const) {
      await assertConnectionRefused(
        connectMysql(tls === undefined ? local : { ...local, tls }),
        new RegExp(
          `: the server does not accept TLS connections, and ssl-mode ${
            tls?.mode ?? "VERIFY_IDENTITY"
          } never falls back to plain text$`,
        ),
      );
    }
    // Only an explicit DISABLED talks plain text, as the test servers need.
    await using db = await connectMysql(mysqlConnectionOptions());
    await db.ping();
  },
});

Deno.test("mysqlSslOptions() turns each ssl-mode into mysql2's ssl option", async (t) => {
  const ca = "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n";
  const cases: [MysqlTlsOptions, string, unknown][] = [
    [{ mode: "VERIFY_IDENTITY", ca }, "db.internal", {
      ca,
      rejectUnauthorized: true,
      verifyIdentity: true,
    }],
    [{ mode: "VERIFY_IDENTITY" }, "db.internal", {
      rejectUnauthorized: true,
      verifyIdentity: true,
    }],
    [{ mode: "VERIFY_CA", ca }, "10.0.4.12", {
      ca,
      rejectUnauthorized: true,
      verifyIdentity: false,
    }],
    [{ mode: "REQUIRED", ca }, "10.0.4.12", { rejectUnauthorized: false, verifyIdentity: false }],
    [{ mode: "DISABLED" }, "10.0.4.12", undefined],
  ];
  for (const [tls, host, expected] of cases) {
    await t.step(`${tls.mode}${tls.ca === undefined ? "" : " with a CA"}`, () => {
      assert.deepEqual(mysqlSslOptions(host, tls), expected);
    });
  }
  await t.step("VERIFY_IDENTITY refuses IPv4 and IPv6 addresses", () => {
    for (const host of ["10.0.4.12", "::1"]) {
      assert.throws(() => mysqlSslOptions(host, { mode: "VERIFY_IDENTITY" }), /needs the server's/);
    }
  });
  assert.deepEqual([...MYSQL_SSL_MODES], ["VERIFY_IDENTITY", "VERIFY_CA", "REQUIRED", "DISABLED"]);
});

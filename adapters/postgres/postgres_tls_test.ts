/**
 * Verified TLS to PostgreSQL, sources and destination, through a TLS-terminating proxy in front of the
 * local PostgreSQL (which has no TLS), with certificates of a throw-away CA. The same local server,
 * reached directly, is the server without TLS that the default settings must refuse.
 */
import assert from "node:assert/strict";
import { type TableExtract, tableExtracts } from "../../domain/catalog.ts";
import { DestinationUnavailableError } from "../../ports/destination_database.ts";
import { assertConnectionRefused } from "../../tests/support/connect_failures.ts";
import { MemorySourceDatabase } from "../memory/memory_source_database.ts";
import {
  encodedCsv,
  readAll,
  readCsvBytes,
} from "../../tests/contracts/source_database_contract.ts";
import { postgresConnectionOptions, PostgresSandbox } from "../../tests/support/databases.ts";
import { ONCOLOGY, ONCOLOGY_ROWS } from "../../tests/support/catalogs.ts";
import { DestinationSandbox } from "../../tests/support/destination_databases.ts";
import {
  makeTestCertificates,
  removeTestCertificates,
  type TestCertificates,
} from "../../tests/support/fake_key_vault.ts";
import {
  type PostgresTlsProxy,
  startPostgresTlsProxy,
} from "../../tests/support/postgres_tls_proxy.ts";
import { ignorePostgres, POSTGRES, randomName } from "../../tests/support/services.ts";
import { W_TABLE, wExpectedRows, wPostgresSql } from "../../tests/support/w_table.ts";
import { connectPostgresDestination } from "./postgres_destination.ts";
import { connectPostgres, type PostgresConnectionOptions } from "./postgres_source_database.ts";
import type { PostgresTlsOptions } from "./postgres_tls.ts";

const ROWS = 1_500;

/** The source's options through the proxy, with the given TLS settings. */
function throughProxy(
  proxy: PostgresTlsProxy,
  tls: PostgresTlsOptions | undefined,
  overrides: Partial<PostgresConnectionOptions> = {},
): PostgresConnectionOptions {
  const { tls: _localOptOut, ...options } = postgresConnectionOptions({
    host: "127.0.0.1",
    port: proxy.port,
    ...overrides,
  });
  return tls === undefined ? options : { ...options, tls };
}

/** A CA, a proxy whose certificate it signed (for `127.0.0.1` and `localhost`), and a second CA. */
async function withProxies(
  fn: (world: {
    certificates: TestCertificates;
    proxy: PostgresTlsProxy;
    otherCa: TestCertificates;
    dnsOnly: TestCertificates;
    dnsOnlyProxy: PostgresTlsProxy;
  }) => Promise<void>,
): Promise<void> {
  const certificates = await makeTestCertificates();
  const otherCa = await makeTestCertificates();
  const dnsOnly = await makeTestCertificates({ subjectAltName: "DNS:localhost" });
  try {
    await using proxy = await startPostgresTlsProxy(certificates);
    await using dnsOnlyProxy = await startPostgresTlsProxy(dnsOnly);
    await fn({ certificates, proxy, otherCa, dnsOnly, dnsOnlyProxy });
  } finally {
    for (const c of [certificates, otherCa, dnsOnly]) await removeTestCertificates(c);
  }
}

Deno.test({
  name: "connectPostgres() with verify-full reads over TLS checked against the test CA",
  ignore: ignorePostgres,
  fn: () =>
    withProxies(async ({ certificates, proxy }) => {
      const sandbox = new PostgresSandbox();
      const schema = randomName("cr8_tls");
      try {
        await sandbox.createRole();
        await sandbox.createSchema(schema, wPostgresSql(ROWS));
        const tls: PostgresTlsOptions = { mode: "verify-full", ca: certificates.caCert };
        for (const host of ["127.0.0.1", "localhost"]) {
          await using db = await connectPostgres(
            throughProxy(proxy, tls, { host, username: sandbox.role, password: sandbox.password }),
          );
          const catalog = await db.describeSchema(schema);
          const table = catalog.tables.find((x) => x.name === W_TABLE)!;
          const extract: TableExtract = { schema, table };
          // Several cursor fetches, then a COPY stream, on the one TLS connection.
          assert.deepEqual(await readAll(db, extract, 400), wExpectedRows(ROWS));
          assert.deepEqual(await readCsvBytes(db, extract), await encodedCsv(db, extract));
        }
        assert.deepEqual(
          proxy.connections.map((c) => [c.tls?.startsWith("TLSv1.") ?? false, c.serverName]),
          [[true, null], [true, "localhost"]], // SNI carries host names, never an IP address
        );
      } finally {
        await sandbox.cleanup();
      }
    }),
});

Deno.test({
  name:
    "connectPostgres() with verify-full refuses a certificate of another CA or for another name",
  ignore: ignorePostgres,
  fn: () =>
    withProxies(async ({ certificates, proxy, otherCa, dnsOnly, dnsOnlyProxy }) => {
      const untrusted = /: TLS handshake failed \(sslmode verify-full\): unable to verify/;
      const wrongName = /: TLS handshake failed \(sslmode verify-full\): .*does not match/;
      // A CA the certificate does not chain to, and the public roots alone.
      await assertConnectionRefused(
        connectPostgres(throughProxy(proxy, { mode: "verify-full", ca: otherCa.caCert })),
        untrusted,
      );
      await assertConnectionRefused(
        connectPostgres(throughProxy(proxy, { mode: "verify-full" })),
        untrusted,
      );
      // The right CA, but the certificate names other hosts.
      await assertConnectionRefused(
        connectPostgres(
          throughProxy(proxy, {
            mode: "verify-full",
            ca: certificates.caCert,
            serverName: "db.tre.example",
          }),
        ),
        wrongName,
      );
      // An IP address is checked as itself: postgres.js alone would check the name "localhost".
      await assertConnectionRefused(
        connectPostgres(throughProxy(dnsOnlyProxy, { mode: "verify-full", ca: dnsOnly.caCert })),
        /does not match certificate's altnames: IP: 127\.0\.0\.1 is not in the cert's list/,
      );
      // The login never reached PostgreSQL: no handshake finished.
      assert.deepEqual(proxy.connections.map((c) => c.tls), [null, null, null]);
      assert.deepEqual(dnsOnlyProxy.connections.map((c) => c.tls), [null]);
    }),
});

Deno.test({
  name: "connectPostgres() with verify-ca ignores the name but not the CA; require checks neither",
  ignore: ignorePostgres,
  fn: () =>
    withProxies(async ({ certificates, proxy, otherCa, dnsOnly, dnsOnlyProxy }) => {
      const ping = async (options: PostgresConnectionOptions) => {
        await using db = await connectPostgres(options);
        await db.ping();
      };
      await ping(throughProxy(dnsOnlyProxy, { mode: "verify-ca", ca: dnsOnly.caCert }));
      await ping(
        throughProxy(proxy, {
          mode: "verify-ca",
          ca: certificates.caCert,
          serverName: "db.tre.example",
        }),
      );
      await assertConnectionRefused(
        connectPostgres(throughProxy(proxy, { mode: "verify-ca", ca: otherCa.caCert })),
        /TLS handshake failed \(sslmode verify-ca\): unable to verify/,
      );
      await ping(throughProxy(proxy, { mode: "require" }));
      assert.equal(proxy.connections.at(-1)?.tls?.startsWith("TLSv1."), true);
    }),
});

Deno.test({
  name:
    "connectPostgres() by default refuses a server without TLS, and never falls back to plain text",
  ignore: ignorePostgres,
  fn: async () => {
    // The local PostgreSQL answers the SSLRequest with "N".
    const { tls: _optOut, ...local } = postgresConnectionOptions();
    for (const tls of [undefined, { mode: "verify-ca" }, { mode: "require" }] as const) {
      const message = await assertConnectionRefused(
        connectPostgres(tls === undefined ? local : { ...local, tls }),
        /: the server does not accept TLS connections \(it answered the SSLRequest with "N"\), and sslmode (verify-full|verify-ca|require) never falls back to plain text$/,
      );
      assert.ok(message.includes(`sslmode ${tls?.mode ?? "verify-full"}`), message);
    }
    // Only an explicit "disable" talks plain text, as the test servers need.
    await using db = await connectPostgres(postgresConnectionOptions());
    await db.ping();
  },
});

Deno.test({
  name: "connectPostgres() refuses bytes a machine in the middle slips in before the TLS handshake",
  ignore: ignorePostgres,
  fn: async () => {
    const certificates = await makeTestCertificates();
    try {
      // CVE-2021-23222: an "S" followed by a forged plain-text message in the same packet.
      await using proxy = await startPostgresTlsProxy({
        ...certificates,
        injectAfterAnswer: new TextEncoder().encode("R\0\0\0\x08\0\0\0\0"),
      });
      await assertConnectionRefused(
        connectPostgres(throughProxy(proxy, { mode: "verify-full", ca: certificates.caCert })),
        /: the server sent unencrypted data before the TLS handshake \(sslmode verify-full\)$/,
      );
    } finally {
      await removeTestCertificates(certificates);
    }
  },
});

Deno.test("connectPostgres() with TLS gives up after connectTimeoutMs on a silent server", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) held.push(conn);
  })();
  try {
    const started = performance.now();
    await assertConnectionRefused(
      connectPostgres({
        ...postgresConnectionOptions({ port: listener.addr.port, connectTimeoutMs: 300 }),
        tls: { mode: "verify-full" },
      }),
      /: TLS negotiation timed out after 300 ms \(sslmode verify-full\)$/,
    );
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 250 && elapsed < 3_000, `took ${elapsed}ms`);
  } finally {
    listener.close();
    await accepting.catch(() => {});
    for (const conn of held) conn.close();
  }
});

Deno.test({
  name: "PostgresDestinationDatabase loads over verify-full TLS and refuses a server without TLS",
  ignore: ignorePostgres,
  fn: () =>
    withProxies(async ({ certificates, proxy, otherCa }) => {
      const sandbox = new DestinationSandbox();
      try {
        await sandbox.create();
        const { tls: _optOut, ...local } = sandbox.options();
        const viaProxy = { ...local, host: "localhost", port: proxy.port };
        await using destination = await connectPostgresDestination({
          ...viaProxy,
          tls: { mode: "verify-full", ca: certificates.caCert },
        });
        const source = new MemorySourceDatabase([ONCOLOGY], ONCOLOGY_ROWS);
        const dataset = {
          project: "TlsProject",
          startTime: "20250611_093000",
          schemaName: "oncology",
        };
        const loaded = await destination.load(dataset, source, tableExtracts(ONCOLOGY), {
          concurrency: 1,
          batchRows: 2,
        });
        assert.equal(loaded.length, ONCOLOGY.tables.length);
        assert.deepEqual(
          await destination.packagedTables({
            project: dataset.project,
            startTime: dataset.startTime,
          }),
          loaded,
        );
        assert.ok(proxy.connections.length >= 2, "the admin and the load connection");
        assert.ok(proxy.connections.every((c) => c.tls !== null && c.serverName === "localhost"));

        await assert.rejects(
          connectPostgresDestination({
            ...viaProxy,
            tls: { mode: "verify-full", ca: otherCa.caCert },
          }),
          (e: unknown) =>
            e instanceof DestinationUnavailableError &&
            /TLS handshake failed \(sslmode verify-full\): unable to verify/.test(e.message),
        );
        await assert.rejects(
          connectPostgresDestination({ ...local, port: POSTGRES.port }),
          (e: unknown) =>
            e instanceof DestinationUnavailableError &&
            /does not accept TLS connections .*never falls back to plain text/.test(e.message),
        );
      } finally {
        await sandbox.cleanup();
      }
    }),
});

Deno.test("connectPostgres() with TLS reports a server that hangs up before answering, at once", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepting = (async () => {
    for await (const conn of listener) {
      // Read the SSLRequest first, so that closing sends FIN, not RST.
      await conn.read(new Uint8Array(8));
      conn.close();
    }
  })();
  try {
    const started = performance.now();
    await assertConnectionRefused(
      connectPostgres({
        ...postgresConnectionOptions({ port: listener.addr.port, connectTimeoutMs: 5_000 }),
        tls: { mode: "verify-full" },
      }),
      /: the server closed the connection before TLS was set up \(sslmode verify-full\)$/,
    );
    assert.ok(performance.now() - started < 2_000, "it waited for the connect timeout");
  } finally {
    listener.close();
    await accepting.catch(() => {});
  }
});

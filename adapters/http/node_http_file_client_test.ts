import assert from "node:assert/strict";
import https from "node:https";
import type { AddressInfo } from "node:net";
import {
  makeTestCertificates,
  removeTestCertificates,
  type TestCertificates,
} from "../../tests/support/fake_key_vault.ts";
import {
  HttpAddressNotAllowedError,
  HttpFileTooLargeError,
  HttpFileUnreachableError,
} from "../../ports/http_file_client.ts";
import { NodeHttpFileClient } from "./node_http_file_client.ts";

/** An HTTPS server on 127.0.0.1 with `certificates`, answering `body`; counts its requests. */
async function withHttpsServer(
  certificates: TestCertificates,
  body: (port: number, requests: () => number) => Promise<void>,
): Promise<void> {
  let count = 0;
  const server = https.createServer(
    { cert: certificates.cert, key: certificates.key },
    (_, res) => {
      count++;
      res.writeHead(200, { "content-type": "text/csv", "content-length": "5" }).end("id\n1\n");
    },
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    await body((server.address() as AddressInfo).port, () => count);
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

const request = (url: string, allowPrivate = true) => ({
  url,
  headers: {},
  signal: AbortSignal.timeout(5000),
  allowPrivate,
});

Deno.test("NodeHttpFileClient: HTTPS to the checked address, the certificate verified for the URL's host", async () => {
  const certificates = await makeTestCertificates({ subjectAltName: "DNS:localhost" });
  try {
    await withHttpsServer(certificates, async (port, requests) => {
      const client = new NodeHttpFileClient({ ca: certificates.caCert });
      const response = await client.get(request(`https://localhost:${port}/a.csv`));
      assert.equal(response.status, 200);
      assert.equal(await response.text(100), "id\n1\n");

      // 127.0.0.1 is not a name the certificate holds: refused, though it is the same server.
      await assert.rejects(
        client.get(request(`https://127.0.0.1:${port}/a.csv`)),
        HttpFileUnreachableError,
      );
      // Without the test CA the certificate is not trusted.
      await assert.rejects(
        new NodeHttpFileClient().get(request(`https://localhost:${port}/a.csv`)),
        HttpFileUnreachableError,
      );
      const before = requests();
      await assert.rejects(
        client.get(request(`https://localhost:${port}/a.csv`, false)),
        HttpAddressNotAllowedError,
      );
      assert.equal(requests(), before, "nothing sent to a private address not allowed");

      const small = await client.get(request(`https://localhost:${port}/a.csv`));
      await assert.rejects(small.text(4), HttpFileTooLargeError);
    });
  } finally {
    await removeTestCertificates(certificates);
  }
});

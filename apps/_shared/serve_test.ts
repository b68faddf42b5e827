import assert from "node:assert/strict";
import { connect } from "node:net";
import { LINGER_MAX_BYTES, listen } from "./serve.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Sends `text` on a new connection and reads until the server closes it or `giveUpMs` pass. */
async function exchange(port: number, text: string, giveUpMs = 3000) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const started = performance.now();
  await conn.write(encoder.encode(text));
  let received = "";
  let closedAfterMs: number | undefined;
  const buffer = new Uint8Array(4096);
  const timer = setTimeout(() => conn.close(), giveUpMs);
  try {
    while (true) {
      const n = await conn.read(buffer).catch(() => null);
      if (n === null) break;
      received += decoder.decode(buffer.subarray(0, n));
    }
    closedAfterMs = performance.now() - started;
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // closed already
    }
  }
  return { received, closedAfterMs };
}

Deno.test("listen() passes requests to fetch and writes its responses", async (t) => {
  const server = await listen(async (request) => {
    const url = new URL(request.url);
    if (url.pathname === "/echo") {
      return new Response(await request.text(), {
        status: 201,
        headers: { "x-method": request.method, "x-seen": request.headers.get("x-test") ?? "" },
      });
    }
    if (url.pathname === "/stream") {
      const parts = ["a", "b", "c"].map((p) => encoder.encode(p));
      return new Response(ReadableStream.from(parts));
    }
    return new Response(null, { status: 204 });
  }, { hostname: "127.0.0.1", port: 0, headersTimeoutMs: 300 });
  const base = `http://127.0.0.1:${server.port}`;
  try {
    await t.step("method, path, headers and body in; status, headers and body out", async () => {
      const res = await fetch(`${base}/echo?q=1`, {
        method: "POST",
        headers: { "x-test": "yes" },
        body: '{"a":1}',
      });
      assert.equal(res.status, 201);
      assert.equal(res.headers.get("x-method"), "POST");
      assert.equal(res.headers.get("x-seen"), "yes");
      assert.equal(await res.text(), '{"a":1}');
    });

    await t.step("a streamed response body", async () => {
      assert.equal(await (await fetch(`${base}/stream`)).text(), "abc");
    });

    await t.step("two requests on one connection when each body was read", async () => {
      const one = "POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nhi";
      const { received } = await exchange(server.port, one + one.replace("hi", "yo"), 1000);
      assert.equal(received.match(/HTTP\/1\.1 201/g)?.length, 2, received);
      assert.ok(received.includes("\r\nyo\r\n"), received);
    });

    await t.step("a reply to a request whose body was not read closes the connection", async () => {
      const { received, closedAfterMs } = await exchange(
        server.port,
        "POST /other HTTP/1.1\r\nhost: x\r\ncontent-length: 1000000\r\n\r\n{",
      );
      assert.match(received, /^HTTP\/1\.1 204/);
      assert.match(received, /connection: close/i);
      assert.ok(closedAfterMs! < 1000, `closed after ${closedAfterMs} ms`);
    });

    await t.step("headers not complete within headersTimeoutMs: 408 and closed", async () => {
      const { received, closedAfterMs } = await exchange(server.port, "GET / HTTP/1.1\r\nhost:");
      assert.match(received, /^HTTP\/1\.1 408/);
      assert.ok(closedAfterMs! < 1500, `closed after ${closedAfterMs} ms`);
    });
  } finally {
    await server.shutdown();
  }
});

Deno.test("listen() shutdown lets a request in flight finish and closes idle connections", async () => {
  const release = Promise.withResolvers<void>();
  const server = await listen(async () => {
    await release.promise;
    return new Response("done");
  }, { hostname: "127.0.0.1", port: 0, headersTimeoutMs: 1000 });
  const idle = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  const inFlight = fetch(`http://127.0.0.1:${server.port}/slow`);
  await new Promise((r) => setTimeout(r, 100));
  let stopped = false;
  const shutdown = server.shutdown().then(() => stopped = true);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(stopped, false, "waits for the request in flight");
  release.resolve();
  const res = await inFlight;
  assert.equal(await res.text(), "done");
  assert.equal(res.headers.get("connection"), "close");
  await shutdown;
  const buffer = new Uint8Array(1024);
  assert.equal(await idle.read(buffer), null, "the connection that sent nothing was closed");
  idle.close();
});

const BODY_LIMIT = 1024 * 1024;

/** Reads a request body up to {@link BODY_LIMIT} and answers 413 with an envelope past it, as the apps do. */
async function refuseLargeBodies(request: Request): Promise<Response> {
  let total = 0;
  const reader = request.body!.getReader();
  while (true) {
    const { done, value } = await reader.read();
    if (done) return new Response(null, { status: 204 });
    total += value.byteLength;
    if (total > BODY_LIMIT) {
      await reader.cancel();
      const payload = { detail: "too large", code: "body_too_large", request_id: "r" };
      return Response.json({ status: "error", payload }, { status: 413 });
    }
  }
}

/**
 * Uploads a chunked body of `bytes` (or for ever) in `piece`-sized chunks, `pauseMs` apart, reading nothing
 * until it has sent all of it; resolves when the connection closes (or `giveUpMs` pass).
 */
function upload(port: number, bytes: number, piece: number, pauseMs: number, giveUpMs = 20_000) {
  return new Promise<
    { received: string; error: string | undefined; sent: number; closed: boolean }
  >(
    (resolve) => {
      const socket = connect(port, "127.0.0.1");
      let received = "";
      let sent = 0;
      let error: string | undefined;
      let closed = true;
      const giveUp = setTimeout(() => {
        closed = false;
        socket.destroy();
      }, giveUpMs);
      socket.on("data", (data: Uint8Array) => received += decoder.decode(data));
      socket.on("error", (e) => error = String(e));
      socket.on("close", () => {
        clearTimeout(giveUp);
        resolve({ received, error, sent, closed });
      });
      socket.pause();
      socket.write("POST /upload HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n");
      const chunk = new Uint8Array(piece).fill(97);
      const next = () => {
        if (socket.destroyed) return;
        if (sent >= bytes) {
          socket.write("0\r\n\r\n");
          socket.resume();
          return;
        }
        socket.write(`${piece.toString(16)}\r\n`);
        socket.write(chunk);
        socket.write("\r\n", () => {
          sent += piece;
          setTimeout(next, pauseMs);
        });
      };
      next();
    },
  );
}

Deno.test("listen() lingers after refusing a body so that the uploading client reads the reply", async (t) => {
  const server = await listen(refuseLargeBodies, {
    hostname: "127.0.0.1",
    port: 0,
    headersTimeoutMs: 1000,
  });
  try {
    await t.step(
      "a client that reads only after sending 2 MiB gets the whole 413 reply",
      async () => {
        const { received, error } = await upload(server.port, 2 * BODY_LIMIT, 64 * 1024, 5);
        assert.match(
          received,
          /^HTTP\/1\.1 413/,
          `received ${JSON.stringify(received)}, error ${error}`,
        );
        assert.match(received, /connection: close/i);
        const envelope = JSON.parse(
          received.slice(received.indexOf("{"), received.lastIndexOf("}") + 1),
        );
        assert.equal(envelope.status, "error");
        assert.equal(envelope.payload.code, "body_too_large");
      },
    );

    await t.step("a client that sends for ever is cut off after LINGER_MAX_BYTES", async () => {
      const { sent, closed } = await upload(server.port, Infinity, 64 * 1024, 0);
      assert.ok(closed, "the server closed the connection");
      assert.ok(sent < BODY_LIMIT + LINGER_MAX_BYTES + 8 * 1024 * 1024, `sent ${sent} bytes`);
    });

    await t.step("a client that sends slowly for ever is cut off after LINGER_MS", async () => {
      const { sent, closed } = await upload(server.port, Infinity, 16 * 1024, 20);
      assert.ok(closed, "the server closed the connection");
      assert.ok(sent < BODY_LIMIT + LINGER_MAX_BYTES, `sent ${sent} bytes`);
    });
  } finally {
    await server.shutdown();
  }
});

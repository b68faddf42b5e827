/**
 * The data API over real HTTP (the gateway's `node:http` server): HAWK binds a request to the host and
 * port the client addressed, a replay on the wire is refused, a GET carrying a body is refused (its
 * payload hash first), and a client behind a TLS-ending proxy signs for port 443. Replies are checked
 * with `hawk.client.authenticate` as a pipeline would.
 */
import assert from "node:assert/strict";
import { connect } from "node:net";
import { listen } from "../../apps/_shared/serve.ts";
import { DataApiWorld, hawk, peopleTable, PIPELINE } from "../support/data_api_world.ts";

async function served(world: DataApiWorld) {
  const server = await listen(world.app.fetch, {
    hostname: "127.0.0.1",
    port: 0,
    headersTimeoutMs: 5000,
  });
  return { base: `http://127.0.0.1:${server.port}`, port: server.port, server };
}

/** Sends raw bytes and returns the raw reply (status line, headers, body). */
function raw(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let reply = "";
    socket.on("data", (chunk) => reply += chunk.toString("utf8"));
    socket.on("end", () => resolve(reply));
    socket.on("error", reject);
    socket.write(request);
  });
}

function headersOf(res: Response): Record<string, string> {
  const headers: Record<string, string> = {};
  res.headers.forEach((value, name) => headers[name] = value);
  return headers;
}

Deno.test("data API over HTTP: signed for this host and port, verified by the client, no replay", async () => {
  await using world = new DataApiWorld();
  const release = await world.published("proj_a", [peopleTable(5)]);
  const { base, server } = await served(world);
  try {
    const url = `${base}/data/v1/releases/${release.id}/tables/people/rows?limit=2`;
    const { header, artifacts } = hawk.client.header(url, "GET", { credentials: PIPELINE });
    const res = await fetch(url, { headers: { authorization: header } });
    const text = await res.text();
    assert.equal(res.status, 200, text);
    hawk.client.authenticate({ headers: headersOf(res) }, PIPELINE, artifacts, {
      payload: text,
      required: true,
    });
    const next = JSON.parse(text).payload.next as string;
    assert.equal(res.headers.get("link"), `<${next}>; rel="next"`);

    const replay = await fetch(url, { headers: { authorization: header } });
    assert.equal(replay.status, 401);
    assert.equal((await replay.json()).payload.code, "unauthorized");

    // Signed for another port of the same host: refused.
    const elsewhere = hawk.client.header(url.replace(/:\d+\//, ":1/"), "GET", {
      credentials: PIPELINE,
    });
    const moved = await fetch(url, { headers: { authorization: elsewhere.header } });
    assert.equal(moved.status, 401);
    await moved.body?.cancel();
  } finally {
    await server.shutdown();
  }
});

Deno.test("data API over HTTP: behind a TLS-ending proxy the client signs for https and port 443", async () => {
  await using world = new DataApiWorld();
  const { port, server } = await served(world);
  try {
    const publicUrl = "https://data.example.org/data/v1/releases";
    const { header, artifacts } = hawk.client.header(publicUrl, "GET", { credentials: PIPELINE });
    // Deno's fetch sets Host from the URL, so the proxy's request is written by hand.
    const reply = await raw(
      port,
      `GET /data/v1/releases HTTP/1.1\r\nHost: data.example.org\r\nX-Forwarded-Proto: https\r\n` +
        `Authorization: ${header}\r\nConnection: close\r\n\r\n`,
    );
    assert.match(reply, /^HTTP\/1\.1 200/, reply);
    const [head, text] = reply.split("\r\n\r\n", 2) as [string, string];
    const headers: Record<string, string> = {};
    for (const line of head.split("\r\n").slice(1)) {
      const at = line.indexOf(":");
      headers[line.slice(0, at).toLowerCase()] = line.slice(at + 1).trim();
    }
    const body = headers["transfer-encoding"] === "chunked" ? dechunk(text) : text;
    hawk.client.authenticate({ headers }, PIPELINE, artifacts, { payload: body, required: true });
    const direct = hawk.client.header("http://data.example.org/data/v1/releases", "GET", {
      credentials: PIPELINE,
    }).header;
    const refused = await raw(
      port,
      `GET /data/v1/releases HTTP/1.1\r\nHost: data.example.org\r\nX-Forwarded-Proto: https\r\n` +
        `Authorization: ${direct}\r\nConnection: close\r\n\r\n`,
    );
    assert.match(refused, /^HTTP\/1\.1 401/, "signed for port 80, received for 443");
  } finally {
    await server.shutdown();
  }
});

/** The body of a chunked reply. */
function dechunk(text: string): string {
  let out = "";
  let rest = text;
  for (;;) {
    const at = rest.indexOf("\r\n");
    const size = parseInt(rest.slice(0, at), 16);
    if (!(size > 0)) return out;
    out += rest.slice(at + 2, at + 2 + size);
    rest = rest.slice(at + 2 + size + 2);
  }
}

Deno.test("data API over HTTP: a GET with a body needs its payload hash, then is refused", async () => {
  await using world = new DataApiWorld();
  const { port, server } = await served(world);
  try {
    const url = `http://127.0.0.1:${port}/data/v1/releases`;
    const body = '{"x":1}';
    const request = (authorization: string) =>
      `GET /data/v1/releases HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: ${authorization}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`;
    const unhashed = hawk.client.header(url, "GET", { credentials: PIPELINE }).header;
    const refused = await raw(port, request(unhashed));
    assert.match(refused, /^HTTP\/1\.1 401/);
    assert.match(refused, /payload hash/);
    const hashed = hawk.client.header(url, "GET", {
      credentials: PIPELINE,
      payload: body,
      contentType: "application/json",
    }).header;
    const bodied = await raw(port, request(hashed));
    assert.match(bodied, /^HTTP\/1\.1 400/);
    assert.match(bodied, /"code":"body_not_allowed"/);
    assert.match(bodied, /server-authorization: Hawk mac=/i);
  } finally {
    await server.shutdown();
  }
});

/**
 * A wire-level fake PostgreSQL server that refuses every password, for tests of error messages: the
 * project's PostgreSQL trusts 127.0.0.1 and never checks one. Its error even echoes the password, to
 * prove that adapters keep it out of their messages.
 *
 * @module
 */
import assert from "node:assert/strict";

/** The fake server: where it listens, and the passwords it was sent. */
export interface PasswordRefusingServer extends AsyncDisposable {
  readonly port: number;
  /** The password of the first connection. */
  readonly receivedPassword: Promise<string>;
  /** Every password received so far, one per connection. */
  readonly passwords: readonly string[];
}

/**
 * Accepts connections until disposed; on each, asks for a cleartext password and refuses it (SQLSTATE
 * 28P01), echoing it in the error.
 */
export function passwordRefusingServer(): PasswordRefusingServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const received = Promise.withResolvers<string>();
  received.promise.catch(() => {});
  const passwords: string[] = [];
  const handling = new Set<Promise<void>>();
  const serving = (async () => {
    for await (const conn of listener) {
      const handled = refuse(conn).then(
        (password) => {
          passwords.push(password);
          received.resolve(password);
        },
        (e) => received.reject(e),
      );
      handling.add(handled);
      handled.finally(() => handling.delete(handled));
    }
  })().catch(() => {});
  return {
    port: listener.addr.port,
    receivedPassword: received.promise,
    passwords,
    async [Symbol.asyncDispose]() {
      listener.close();
      await serving;
      await Promise.all(handling);
    },
  };
}

/** Runs one connection: SSL refused, cleartext password asked for, then refused with an error. */
async function refuse(conn: Deno.Conn): Promise<string> {
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
    const fields = [
      "SFATAL",
      "VFATAL",
      "C28P01",
      `Mpassword authentication failed for user "loader" (password "${password}")`,
    ];
    await conn.write(
      message("E", new TextEncoder().encode(fields.map((f) => `${f}\0`).join("") + "\0")),
    );
    return password;
  } finally {
    conn.close();
  }
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

/**
 * The worker of {@link HashingFileWriter} (`sha512.ts`): hashes the buffers it is sent, in the order they
 * arrive, and sends each back (transferred) for the writer to fill again; `"digest"` ends the hash and
 * sends its lower-case hex. It needs no permissions and reads nothing but its messages.
 *
 * `deno compile` embeds it only when told (`--include`, tools/compile.ts).
 *
 * @module
 */
import { createHash } from "node:crypto";

/** A filled buffer: the first `length` bytes are the next bytes of the file. */
export interface HashChunk {
  readonly buffer: ArrayBuffer;
  readonly length: number;
}

/** What the worker sends back: an emptied buffer, or the digest. */
export type HashReply = { readonly buffer: ArrayBuffer } | { readonly sha512: string };

const hash = createHash("sha512");
const scope = self as unknown as {
  onmessage: ((event: MessageEvent<HashChunk | "digest">) => void) | null;
  postMessage(message: HashReply, transfer?: Transferable[]): void;
};

scope.onmessage = ({ data }) => {
  if (data === "digest") {
    scope.postMessage({ sha512: hash.digest("hex") });
    return;
  }
  hash.update(new Uint8Array(data.buffer, 0, data.length));
  scope.postMessage({ buffer: data.buffer }, [data.buffer]);
};

/**
 * The worker of {@link HashingFileWriter} (`sha512.ts`), one per process, shared by every file being
 * written: each message names its stream, and the worker keeps one running hash per stream. It hashes
 * the buffers it is sent in the order they arrive (a stream's buffers arrive in its order) and sends
 * each back (transferred) for the writer to fill again; `digest` ends a stream's hash and sends its
 * lower-case hex; `drop` forgets a stream (an abandoned file). A failure to hash is reported to its
 * stream alone. It needs no permissions and reads nothing but its messages.
 *
 * `deno compile` embeds it only when told (`--include`, tools/compile.ts).
 *
 * @module
 */
import { createHash, type Hash } from "node:crypto";

/** What the writer sends: a filled buffer (its first `length` bytes are the stream's next), or an end. */
export type HashRequest =
  | { readonly stream: number; readonly buffer: ArrayBuffer; readonly length: number }
  | { readonly stream: number; readonly end: "digest" | "drop" };

/** What the worker sends back: an emptied buffer, the digest, or why the stream cannot be hashed. */
export type HashReply =
  | { readonly stream: number; readonly buffer: ArrayBuffer }
  | { readonly stream: number; readonly sha512: string }
  | { readonly stream: number; readonly error: string };

const hashes = new Map<number, Hash>();
const scope = self as unknown as {
  onmessage: ((event: MessageEvent<HashRequest>) => void) | null;
  postMessage(message: HashReply, transfer?: Transferable[]): void;
};

scope.onmessage = ({ data }) => {
  const { stream } = data;
  try {
    if ("end" in data) {
      const hash = hashes.get(stream);
      hashes.delete(stream);
      if (data.end === "digest") {
        scope.postMessage({ stream, sha512: (hash ?? createHash("sha512")).digest("hex") });
      }
      return;
    }
    let hash = hashes.get(stream);
    if (hash === undefined) hashes.set(stream, hash = createHash("sha512"));
    hash.update(new Uint8Array(data.buffer, 0, data.length));
    scope.postMessage({ stream, buffer: data.buffer }, [data.buffer]);
  } catch (e) {
    hashes.delete(stream);
    scope.postMessage({ stream, error: e instanceof Error ? e.message : String(e) });
  }
};

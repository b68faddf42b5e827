/**
 * How glibc's malloc gives freed memory back, set once when the publish service is built.
 *
 * Much of the service's memory outside V8's heap comes from glibc's malloc: the bytes of every
 * `ArrayBuffer` (the drivers' socket reads, CSV chunks, file buffers) and the objects of the native
 * libraries. By default glibc raises its mmap threshold to the size of the largest block freed (up to
 * 32 MiB), so blocks of that size are then taken from the heap, whose free space goes back to the system
 * only when it lies at the top; its trim threshold follows. Fixing both at 128 KiB, glibc's starting
 * values, keeps large blocks mapped on their own (returned the moment they are freed) and trims the heap
 * sooner: 10-20 MB less peak RSS on the 1M-row → duckdb cells, measured alternating with and without
 * (docs/benchmarks.md, issue 20, fourth session). Set in the process itself, it needs no environment
 * variable (`MALLOC_MMAP_THRESHOLD_`) for anyone to remember, in a start task, a binary or an image.
 *
 * @module
 */

/** `mallopt`'s parameter numbers (glibc's `malloc.h`). */
const M_TRIM_THRESHOLD = -1;
const M_MMAP_THRESHOLD = -3;

/** Blocks this large or larger are mapped on their own, and heap free space this large is trimmed. */
export const MALLOC_THRESHOLD_BYTES = 128 * 1024;

/**
 * Fixes glibc's mmap and trim thresholds at {@link MALLOC_THRESHOLD_BYTES}.
 *
 * @returns false, changing nothing, where there is no glibc (musl, macOS) or no permission to call it
 *   (`--allow-ffi`); true once both are set.
 */
export function returnFreedMemoryPromptly(): boolean {
  let libc: Deno.DynamicLibrary<{ mallopt: { parameters: ["i32", "i32"]; result: "i32" } }>;
  try {
    libc = Deno.dlopen("libc.so.6", { mallopt: { parameters: ["i32", "i32"], result: "i32" } });
  } catch {
    return false;
  }
  try {
    return libc.symbols.mallopt(M_MMAP_THRESHOLD, MALLOC_THRESHOLD_BYTES) === 1 &&
      libc.symbols.mallopt(M_TRIM_THRESHOLD, MALLOC_THRESHOLD_BYTES) === 1;
  } finally {
    libc.close();
  }
}

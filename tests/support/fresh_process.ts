/**
 * Runs a script in a fresh Deno process, for what is set once per process (an allocator's settings, a
 * peak RSS) and so cannot be observed in a test process that earlier tests have shaped.
 *
 * @module
 */
import assert from "node:assert/strict";

/** How to run the script. */
export interface FreshProcessOptions {
  /** Arguments the script reads from `Deno.args`. */
  readonly args?: readonly string[];
  /** The whole environment of the process; the test process's when absent. */
  readonly env?: Record<string, string>;
}

/**
 * Runs `script` (JavaScript, all permissions, `deno eval`) and parses what it prints as JSON.
 *
 * @throws {AssertionError} with the script's standard error when it exits with another code than 0.
 */
export async function inFreshProcess<T>(
  script: string,
  options: FreshProcessOptions = {},
): Promise<T> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=js", script, ...options.args ?? []],
    ...(options.env === undefined ? {} : { env: options.env, clearEnv: true }),
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  return JSON.parse(new TextDecoder().decode(stdout)) as T;
}

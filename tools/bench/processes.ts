/**
 * What the bench asks of the operating system: writing a line, running a shell command and timing it,
 * and a process's CPU seconds and peak memory. `/proc` is read through a shell, since Deno reads it only with `-A`.
 *
 * @module
 */

/** Writes a line to standard output at once (the bench's progress and results). */
export function say(text: string): void {
  Deno.stdout.writeSync(new TextEncoder().encode(text + "\n"));
}

/**
 * Runs a command with `bash -c` and times it.
 *
 * @returns the wall time in seconds.
 * @throws {Error} naming the command, with its standard error, when it exits with another code than 0.
 */
export async function sh(command: string): Promise<number> {
  const started = performance.now();
  const { code, stderr } = await new Deno.Command("bash", {
    args: ["-c", command],
    stderr: "piped",
  }).output();
  if (code !== 0) throw new Error(`${command}: ${new TextDecoder().decode(stderr)}`);
  return (performance.now() - started) / 1000;
}

/** Reads a file of `/proc` (or any) through `cat`. */
async function readThroughShell(path: string): Promise<string> {
  const { stdout } = await new Deno.Command("bash", {
    args: ["-c", `cat ${path}`],
    stdout: "piped",
  }).output();
  return new TextDecoder().decode(stdout);
}

/**
 * User plus system CPU seconds in the text of `/proc/<pid>/stat`: fields 14 and 15 (`utime`, `stime`),
 * in clock ticks of 10 ms, counted after the command name (which may hold spaces and parentheses).
 */
export function cpuSecondsOfStat(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** User plus system CPU seconds a process has used. */
export async function cpuSeconds(pid: number): Promise<number> {
  return cpuSecondsOfStat(await readThroughShell(`/proc/${pid}/stat`));
}

/** The peak resident memory (`VmHWM`) in the text of `/proc/<pid>/status`, in MB; 0 when absent. */
export function peakRssMbOfStatus(status: string): number {
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
}

/** A process's peak resident memory since the last {@link resetPeakRss}, in MB. */
export async function peakRssMb(pid: number): Promise<number> {
  return peakRssMbOfStatus(await readThroughShell(`/proc/${pid}/status`));
}

/** A process's resident memory now (`VmRSS`), in MB. */
export async function rssMb(pid: number): Promise<number> {
  const status = await readThroughShell(`/proc/${pid}/status`);
  return Math.round(Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1] ?? 0) / 1024);
}

/** Resets a process's peak so each run is measured on its own (Linux `clear_refs` 5). */
export async function resetPeakRss(pid: number): Promise<void> {
  await new Deno.Command("bash", { args: ["-c", `echo 5 > /proc/${pid}/clear_refs`] }).output();
}

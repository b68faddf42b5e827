/**
 * What the bench measured, and how it is shown: one line per cell while it runs, then a Markdown table
 * (time, rows/s, output size, the limit's time, their ratio, peak RSS, digest) with the CPU split of the
 * fake-served sources, saved below the `<!-- bench results -->` marker of a file when asked.
 *
 * @module
 */
import { cpus, totalmem } from "node:os";
import type { BenchFormat, BenchSource } from "./options.ts";

/** One source → format cell: medians over the measured runs. */
export interface Cell {
  source: BenchSource;
  format: BenchFormat;
  /** Median wall time of a package, in seconds. */
  seconds: number;
  /** Median time of the limit command measured just before each run, in seconds. */
  limit: number;
  peakRssMb: number;
  outputMb: number;
  digestOk: boolean;
  /**
   * SQL Server and Databricks only: median CPU seconds per run of the fake server during packaging and
   * during the raw read, of the publish service during packaging, and of the raw read's client (the
   * driver alone).
   */
  fakeCpu?: { run: number; read: number; service: number; client: number };
}

/** The median (the upper one of an even count). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** The line printed when a cell is done. */
export function cellSummary(cell: Cell): string {
  return `${cell.source} → ${cell.format}: ${cell.seconds.toFixed(2)} s (limit ${
    cell.limit.toFixed(2)
  } s, ratio ${(cell.seconds / cell.limit).toFixed(2)}), peak RSS ${
    cell.peakRssMb.toFixed(0)
  } MB, digest ${cell.digestOk ? "ok" : "MISMATCH"}${
    cell.fakeCpu === undefined
      ? ""
      : `; CPU per run: publish service ${cell.fakeCpu.service.toFixed(2)} s, fake ` +
        `${cell.source} ${cell.fakeCpu.run.toFixed(2)} s (${
          cell.fakeCpu.read.toFixed(2)
        } s during the raw read, whose client used ${cell.fakeCpu.client.toFixed(2)} s)`
  }`;
}

/** This machine in one phrase: cores, CPU model, memory and Deno version. */
export function describeMachine(): string {
  const cpu = cpus()[0]?.model ?? "unknown";
  return `${cpus().length} × ${cpu}, ${
    (totalmem() / 2 ** 30).toFixed(0)
  } GiB RAM; Deno ${Deno.version.deno}`;
}

/**
 * The results as Markdown: what was measured where, the table of cells, and per fake-served source a
 * paragraph of CPU seconds.
 *
 * @param run the W table's rows, the measured runs per cell, and {@link describeMachine}'s phrase.
 */
export function renderReport(
  cells: readonly Cell[],
  run: { readonly rows: number; readonly runs: number; readonly machine: string },
): string {
  return [
    `Machine: ${run.machine}; ` +
    `the databases run on the same machine. W table, ${
      run.rows.toLocaleString("en")
    } rows; median of ${run.runs} runs after a warm-up.`,
    "",
    "| source → format | time (s) | rows/s | output (MB) | limit (s) | ratio to limit | peak RSS (MB) | digest |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ...cells.map((c) =>
      `| ${c.source} → ${c.format} | ${c.seconds.toFixed(2)} | ${
        Math.round(run.rows / c.seconds).toLocaleString("en")
      } | ` +
      `${c.outputMb.toFixed(0)} | ${c.limit.toFixed(2)} | ${(c.seconds / c.limit).toFixed(2)} | ${
        c.peakRssMb.toFixed(0)
      } | ${c.digestOk ? "matches source" : "MISMATCH"} |`
    ),
    ...(["SQL Server", "Databricks"] as const).flatMap((source) => {
      const served = cells.filter((c) => c.source === source && c.fakeCpu !== undefined);
      return served.length === 0 ? [] : [
        "",
        `${source} rows, CPU seconds per run (median): the publish service / the fake ` +
        `${source === "SQL Server" ? "TDS server" : "workspace"} (a child process generating W ` +
        "as it is read) / the fake during the raw read / the raw read's client (the driver " +
        "alone): " +
        served.map((c) =>
          `${c.format} ${c.fakeCpu!.service.toFixed(2)} / ${c.fakeCpu!.run.toFixed(2)} / ${
            c.fakeCpu!.read.toFixed(2)
          } / ${c.fakeCpu!.client.toFixed(2)}`
        ).join(", ") + ".",
      ];
    }),
  ].join("\n");
}

/** The marker below which `--write` puts the results. */
export const RESULTS_MARKER = "<!-- bench results -->";

/**
 * A file's text with the results put below {@link RESULTS_MARKER}: whatever was below it goes; a file
 * without the marker keeps all it had, and the marker and results are added at its end.
 */
export function withResults(previous: string, report: string): string {
  const head = previous.includes(RESULTS_MARKER)
    ? previous.slice(0, previous.indexOf(RESULTS_MARKER))
    : previous;
  return `${head}${RESULTS_MARKER}\n${report}\n`;
}

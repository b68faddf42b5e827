/**
 * Schedules in cron syntax (5 fields: minute, hour, day of month, month, day of week), always in UTC:
 * when an HTTP-file source runs by itself (`docs/http-sources.md`). A field is `*`, a number, a range
 * `a-b`, a step `*\/n` or `a-b/n`, or a comma list of those; day of week is 0-7 (0 and 7 are Sunday).
 * As in Vixie cron, when both day fields are restricted a day matches either of them. Names (`MON`,
 * `JAN`) and the `@daily` forms are not accepted: one spelling per schedule.
 *
 * @module
 */
import { AppError } from "./errors.ts";

/** A schedule that is not a 5-field cron expression (to be a configuration error). */
export class InvalidCronError extends AppError {
  readonly code = "invalid_cron";

  constructor(readonly expression: string, reason: string) {
    super(`Cannot read schedule "${expression}": ${reason}`);
  }
}

/** A parsed schedule: the allowed values of each field. */
export interface CronSchedule {
  readonly expression: string;
  readonly minutes: ReadonlySet<number>;
  readonly hours: ReadonlySet<number>;
  readonly daysOfMonth: ReadonlySet<number>;
  readonly months: ReadonlySet<number>;
  /** 0-6, Sunday 0 (a 7 is read as 0). */
  readonly daysOfWeek: ReadonlySet<number>;
  /** Whether the day-of-month field was `*` (then only day of week restricts days, and vice versa). */
  readonly anyDayOfMonth: boolean;
  readonly anyDayOfWeek: boolean;
}

const FIELDS = [
  { name: "minute", min: 0, max: 59 },
  { name: "hour", min: 0, max: 23 },
  { name: "day of month", min: 1, max: 31 },
  { name: "month", min: 1, max: 12 },
  { name: "day of week", min: 0, max: 7 },
] as const;

/**
 * Parses a 5-field cron expression.
 *
 * @throws {InvalidCronError} naming the field that is wrong.
 */
export function parseCron(expression: string): CronSchedule {
  const parts = expression.trim().split(/\s+/);
  if (parts.length !== 5) {
    throw new InvalidCronError(expression, `it has ${parts.length} fields, not 5`);
  }
  const sets = parts.map((part, i) => parseField(expression, part, FIELDS[i]!));
  const daysOfWeek = new Set([...sets[4]!].map((d) => d % 7));
  return {
    expression,
    minutes: sets[0]!,
    hours: sets[1]!,
    daysOfMonth: sets[2]!,
    months: sets[3]!,
    daysOfWeek,
    anyDayOfMonth: parts[2] === "*",
    anyDayOfWeek: parts[4] === "*",
  };
}

function parseField(
  expression: string,
  text: string,
  field: { name: string; min: number; max: number },
): Set<number> {
  const values = new Set<number>();
  for (const item of text.split(",")) {
    const match = /^(\*|(\d{1,2})(?:-(\d{1,2}))?)(?:\/(\d{1,2}))?$/.exec(item);
    if (match === null) {
      throw new InvalidCronError(
        expression,
        `the ${field.name} field "${text}" is not cron syntax`,
      );
    }
    const from = match[1] === "*" ? field.min : Number(match[2]);
    const to = match[1] === "*"
      ? field.max
      : match[3] === undefined
      ? (match[4] === undefined ? from : field.max)
      : Number(match[3]);
    const step = match[4] === undefined ? 1 : Number(match[4]);
    if (from < field.min || to > field.max || from > to || step < 1) {
      throw new InvalidCronError(
        expression,
        `the ${field.name} field "${text}" is outside ${field.min}-${field.max}`,
      );
    }
    for (let v = from; v <= to; v += step) values.add(v);
  }
  return values;
}

/** Whether the schedule fires in the UTC minute of `at`. */
export function cronMatches(schedule: CronSchedule, at: Date): boolean {
  if (!schedule.minutes.has(at.getUTCMinutes()) || !schedule.hours.has(at.getUTCHours())) {
    return false;
  }
  if (!schedule.months.has(at.getUTCMonth() + 1)) return false;
  const dom = schedule.daysOfMonth.has(at.getUTCDate());
  const dow = schedule.daysOfWeek.has(at.getUTCDay());
  if (schedule.anyDayOfMonth) return dow;
  if (schedule.anyDayOfWeek) return dom;
  return dom || dow;
}

/** Minutes in four years and a day: every valid schedule fires within it (29 February included). */
const SEARCH_MINUTES = (4 * 366 + 1) * 24 * 60;

/**
 * The first minute strictly after `after` (rounded down to its minute) at which the schedule fires, or
 * `undefined` when it never does (`0 0 31 2 *`).
 */
export function nextCronTime(schedule: CronSchedule, after: Date): Date | undefined {
  const t = new Date(Math.floor(after.getTime() / 60_000) * 60_000);
  for (let i = 0; i < SEARCH_MINUTES; i++) {
    t.setTime(t.getTime() + 60_000);
    if (!schedule.months.has(t.getUTCMonth() + 1)) {
      // Skip to the first minute of the next month.
      t.setTime(Date.UTC(t.getUTCFullYear(), t.getUTCMonth() + 1, 1) - 60_000);
      continue;
    }
    if (cronMatches(schedule, t)) return new Date(t);
  }
  return undefined;
}

/**
 * The latest minute in `(after, upTo]` at which the schedule fires, or `undefined`: the slot a
 * scheduler that last looked at `after` and looks again at `upTo` must run (missed slots in between
 * are run once, not once each).
 */
export function latestCronTime(schedule: CronSchedule, after: Date, upTo: Date): Date | undefined {
  let found: Date | undefined;
  let t: Date | undefined = after;
  for (;;) {
    t = nextCronTime(schedule, t);
    if (t === undefined || t.getTime() > upTo.getTime()) return found;
    found = t;
  }
}

/**
 * A child process for the audit trail's multi-process test: appends `count` records to one file through
 * FileAuditTrail, each tagged with the writer's name in `request_id` (`<writer>-<n>`). It starts once the
 * file `<path>.go` exists, so that several workers append at the same time.
 *
 * Usage: deno run --allow-read --allow-write audit_worker.ts <path> <writer> <count>
 */
import { FileAuditTrail } from "../../adapters/filesystem/file_audit_trail.ts";
import { anAuditEntry } from "../contracts/audit_trail_contract.ts";

const [path = "", writer = "w", count = "1"] = Deno.args;

if (import.meta.main) {
  const trail = new FileAuditTrail(path);
  while (!await exists(`${path}.go`)) await new Promise((resolve) => setTimeout(resolve, 10));
  for (let n = 1; n <= Number(count); n++) {
    await trail.append(anAuditEntry({ request_id: `${writer}-${n}` }));
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * The bundled JSON Schemas (draft 2020-12) of the event contract, a byte-identical copy of the
 * repository's events/schema/ shipped in this package's schema/ folder (`npm run sync-schemas`).
 */
import { readdirSync, readFileSync } from "node:fs";
import { isIP } from "node:net";
import { join } from "node:path";
import Ajv2020 from "ajv/dist/2020";
import type { ErrorObject, ValidateFunction } from "ajv";
import addFormats from "ajv-formats";
import type { ContractViolation } from "./contract";

/** Folder of the bundled `<type>.schema.json` files. */
export const SCHEMA_DIR = join(__dirname, "..", "schema");

let ajv: Ajv2020 | undefined;
const compiled = new Map<string, ValidateFunction>();
let known: ReadonlySet<string> | undefined;

function instance(): Ajv2020 {
  if (ajv === undefined) {
    ajv = new Ajv2020({ allErrors: true, strict: true, unicodeRegExp: true });
    addFormats(ajv, ["date-time", "uuid"]);
    // Formats of authtrail's schemas that ajv-formats does not define.
    ajv.addFormat("ip", { type: "string", validate: (s: string) => isIP(s) !== 0 });
    ajv.addFormat("double", { type: "number", validate: (n: number) => Number.isFinite(n) });
  }
  return ajv;
}

/** Event types that have a bundled schema. */
export function schemaTypes(): ReadonlySet<string> {
  if (known === undefined) {
    known = new Set(
      readdirSync(SCHEMA_DIR)
        .filter((f) => f.endsWith(".schema.json"))
        .map((f) => f.slice(0, -".schema.json".length)),
    );
  }
  return known;
}

/** The compiled validator of one type's bundled schema, or undefined for an unknown type. */
export function schemaValidator(type: string): ValidateFunction | undefined {
  if (!schemaTypes().has(type)) return undefined;
  let v = compiled.get(type);
  if (v === undefined) {
    const schema: unknown = JSON.parse(readFileSync(join(SCHEMA_DIR, `${type}.schema.json`), "utf8"));
    v = instance().compile(schema as object);
    compiled.set(type, v);
  }
  return v;
}

/** `/data/roles/1` → `data.roles[1]`, the contract's field paths. */
function fieldPath(pointer: string, extra?: string): string {
  const parts = pointer
    .split("/")
    .slice(1)
    .map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"));
  if (extra !== undefined) parts.push(extra);
  let out = "";
  for (const p of parts) {
    if (/^\d+$/.test(p)) out += `[${p}]`;
    else out += out === "" ? p : `.${p}`;
  }
  return out === "" ? "(event)" : out;
}

/** Ajv's errors as contract violations. Ajv's messages never contain the instance's values. */
export function schemaViolations(errors: readonly ErrorObject[] | null | undefined): ContractViolation[] {
  const out: ContractViolation[] = [];
  const seen = new Set<string>();
  for (const e of errors ?? []) {
    let v: ContractViolation;
    if (e.keyword === "required") {
      v = { field: fieldPath(e.instancePath, String(e.params["missingProperty"])), reason: "is required" };
    } else if (e.keyword === "additionalProperties") {
      const name = String(e.params["additionalProperty"]);
      v = { field: fieldPath(e.instancePath, name), reason: `unknown field \`${name}\`` };
    } else {
      v = { field: fieldPath(e.instancePath), reason: e.message ?? e.keyword };
    }
    const key = `${v.field}\u0000${v.reason}`;
    if (!seen.has(key)) {
      seen.add(key);
      out.push(v);
    }
  }
  return out;
}

// Refresh sdk/node/schema/ from the repository's events/schema/ (the contract's JSON Schemas).
// Usage: npm run sync-schemas [-- /path/to/events/schema]
import { copyFileSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const target = resolve(here, "..", "schema");
const source = resolve(process.argv[2] ?? join(here, "..", "..", "..", "events", "schema"));
const wanted = readdirSync(source).filter((f) => f.endsWith(".schema.json")).sort();
if (wanted.length === 0) {
  console.error(`sync-schemas: no *.schema.json in ${source}`);
  process.exit(1);
}
mkdirSync(target, { recursive: true });
for (const f of readdirSync(target)) {
  if (f.endsWith(".schema.json") && !wanted.includes(f)) {
    rmSync(join(target, f));
    console.log(`removed ${f}`);
  }
}
for (const f of wanted) copyFileSync(join(source, f), join(target, f));
console.log(`sync-schemas: ${wanted.length} schemas copied from ${source} to ${target}`);

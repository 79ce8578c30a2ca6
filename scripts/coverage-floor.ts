// Fails when `opa test --coverage --format=json` reports less than the floor, and names the least-covered files.
// Usage: node scripts/coverage-floor.ts COVERAGE_JSON FLOOR_PERCENT
import { readFileSync } from "node:fs";

const [file, floorArg] = process.argv.slice(2);
const floor = Number(floorArg);
if (!file || !Number.isFinite(floor)) {
  console.error("usage: node scripts/coverage-floor.ts COVERAGE_JSON FLOOR_PERCENT");
  process.exit(2);
}
const report = JSON.parse(readFileSync(file, "utf8")) as {
  coverage?: number;
  files?: Record<string, { coverage?: number }>;
};
const total = report.coverage ?? 0;
const files = Object.entries(report.files ?? {})
  .map(([name, f]) => ({ name, coverage: f.coverage ?? 0 }))
  .sort((a, b) => a.coverage - b.coverage);
if (total < floor) {
  console.error(`policy coverage ${total.toFixed(1)}% is under the ${floor}% floor; least covered:`);
  for (const f of files.slice(0, 5)) console.error(`  ${f.name}: ${f.coverage.toFixed(1)}%`);
  process.exit(1);
}
console.log(`policy coverage ${total.toFixed(1)}% (floor ${floor}%)`);

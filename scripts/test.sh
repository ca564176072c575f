#!/bin/sh
# The one test line: installs what it needs, then format, lint, types, unit tests and the
# end-to-end tests against real OpenVPN, FRR and nftables in network namespaces (root).
# Under CI=true the end-to-end tests fail, never skip, when they cannot run.
set -eu
cd "$(dirname "$0")/.."
./scripts/setup.sh
npm run --silent format:check
npm run --silent lint
npm run --silent typecheck

results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
status=0
npx vitest run --project unit --reporter=default --reporter=json --outputFile.json="$results/unit.json" || status=1
npx vitest run --project e2e --reporter=default --reporter=json --outputFile.json="$results/e2e.json" || status=1
node -e '
  const fs = require("fs");
  let passed = 0, failed = 0, skipped = 0;
  for (const f of process.argv.slice(1)) {
    if (!fs.existsSync(f)) { failed++; continue; }
    const r = JSON.parse(fs.readFileSync(f, "utf8"));
    passed += r.numPassedTests; failed += r.numFailedTests; skipped += r.numPendingTests + r.numTodoTests;
  }
  console.log(`${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ""));
' "$results/unit.json" "$results/e2e.json"
exit $status

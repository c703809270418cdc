#!/usr/bin/env bash
# CI entry for the example signer: installs the locked dependencies and runs its tests against
# the hookvault binary the C++ build produced (HOOKVAULT_BIN, default ../../build/hookvault).
set -euo pipefail
cd "$(dirname "$0")"
HOOKVAULT_BIN="${HOOKVAULT_BIN:-$(cd ../.. && pwd)/build/hookvault}"
export HOOKVAULT_BIN
echo "== examples/signer-node: node $(node --version), hookvault $HOOKVAULT_BIN"
npm ci --no-audit --no-fund
npm test

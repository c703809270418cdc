#!/usr/bin/env bash
# ctest fuzz.json_node_corpus: Node's JSON.stringify(JSON.parse(input)) for
# every input of tests/fuzz/corpus/json is still exactly what is committed in
# tests/fuzz/json-node (JsStringifyNodeTest compares js_stringify to those).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
n=0
for input in "$here"/corpus/json/*; do
  name=$(basename "$input")
  node -e '
    const fs = require("fs");
    let out = "";
    try { out = JSON.stringify(JSON.parse(fs.readFileSync(process.argv[1], "utf8"))); } catch (e) {}
    process.stdout.write(out);' "$input" | cmp -s - "$here/json-node/$name" || {
    echo "Node disagrees with the committed json-node/$name"; exit 1; }
  n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "no inputs"; exit 1; }
echo "Node agrees with the $n committed outputs"

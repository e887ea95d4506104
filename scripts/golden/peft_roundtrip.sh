#!/usr/bin/env bash
# Adapters written by balora must load in Python peft with the same logits: writes them with
# balora_adapters.mjs, then checks each with peft_check.py (real peft; PYTHON defaults to /tmp/hfenv).
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-/tmp/hfenv/bin/python}
out=$(mktemp -d)
node scripts/golden/balora_adapters.mjs "$out"
status=0
for d in "$out"/*/; do
  name=$(basename "$d")
  if "$PYTHON" scripts/golden/peft_check.py "$d/adapter" "$(cat "$d/base.txt")" "$d/inputs.safetensors" "$d/logits.safetensors" --key logits; then
    echo "OK   $name"
  else
    echo "FAIL $name"; status=1
  fi
done
rm -rf "$out"
exit $status

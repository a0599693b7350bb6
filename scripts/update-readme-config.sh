#!/usr/bin/env bash
# Regenerate the configuration table in README.md from the code (`shopd config --format markdown`).
# Usage: scripts/update-readme-config.sh [path/to/shopd]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/release/shopd}
table=$("$bin" config --format markdown)
/usr/bin/python3 - "$table" <<'PY'
import sys
table = sys.argv[1]
text = open("README.md").read()
begin, end = "<!-- config-table:begin -->\n", "<!-- config-table:end -->"
a = text.index(begin) + len(begin)
b = text.index(end)
open("README.md", "w").write(text[:a] + table + "\n" + text[b:])
PY

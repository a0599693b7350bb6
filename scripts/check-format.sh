#!/usr/bin/env bash
# Fails when a C++ file differs from what .clang-format says (`make format` fixes it). Files git
# does not track yet count too (not the ignored ones: build trees), so a new file is checked before
# its first commit.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files --cached --others --exclude-standard '*.cpp' '*.hpp' 2>/dev/null || find src include tests -name '*.[ch]pp')
[ ${#files[@]} -eq 0 ] && exit 0
if ! clang-format --dry-run --Werror "${files[@]}" 2>/tmp/shopd-format.$$; then
  head -40 /tmp/shopd-format.$$ >&2; rm -f /tmp/shopd-format.$$
  echo "check-format: files above are not formatted; run 'make format'" >&2
  exit 1
fi
rm -f /tmp/shopd-format.$$

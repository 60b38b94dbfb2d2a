#!/usr/bin/env bash
# Rewrite benchmark (BENCHMARKS.md, section "Rewrite"): `tagwatch set --dry-run` over a generated config
# repository of 10,000 YAML files / 20,000 image references (discovery + rewrite of every file), its
# wall time (hyperfine) and peak RSS (/usr/bin/time -v); then the same edit written by tagwatch and by a
# ruamel.yaml round trip, the ruamel time, and how many bytes outside the image values each changed.
# Usage: bench/rewrite.sh [FILES]   (default 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
files="${1:-10000}"
image=ghcr.io/acme/shared
tag=2.0.0
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cargo build --release --locked --quiet
tagwatch="$PWD/target/release/tagwatch"
python3 bench/rewrite_generate.py "$work/repo" "$files"
echo "load average before measuring: $(cut -d" " -f1-3 /proc/loadavg) on $(nproc) cores"
echo "generated: $(find "$work/repo" -name "*.y*ml" | wc -l) files, $(cat $(find "$work/repo" -type f) | wc -c) bytes"

# Discovery + rewrite of every file, nothing written (the diff goes to /dev/null).
cat $(find "$work/repo" -type f) > /dev/null
hyperfine --warmup 1 --runs 10 --export-json "$work/hyperfine.json" \
  "$tagwatch set $image=$tag $work/repo --dry-run > /dev/null 2>&1"
/usr/bin/time -v "$tagwatch" set "$image=$tag" "$work/repo" --dry-run > /dev/null 2> "$work/time.txt"
grep -E "User time|System time" "$work/time.txt"
grep -E 'would change' "$work/time.txt" || true
grep -E 'Maximum resident set size|Elapsed' "$work/time.txt"

# The same edit, written: tagwatch, then ruamel.yaml.
cp -r "$work/repo" "$work/tagwatch"
/usr/bin/time -v "$tagwatch" set "$image=$tag" "$work/tagwatch" > "$work/tagwatch.out" 2> "$work/tagwatch-time.txt"
tail -n 1 "$work/tagwatch.out"
grep -E 'Elapsed|Maximum resident' "$work/tagwatch-time.txt" | sed 's/^/tagwatch (write): /'
python3 bench/rewrite_compare.py --tag-only "$work/repo" "$work/tagwatch"

python3 -c "import ruamel.yaml" 2>/dev/null || python3 -m pip install --quiet --progress-bar off ruamel.yaml > /dev/null
cp -r "$work/repo" "$work/ruamel"
/usr/bin/time -v python3 bench/rewrite_ruamel.py "$work/ruamel" "$image" "$tag" 2> "$work/ruamel-time.txt"
grep -E 'Elapsed|Maximum resident|User time|System time' "$work/ruamel-time.txt" | sed 's/^/ruamel: /'
python3 -c "import ruamel.yaml; print('ruamel.yaml', ruamel.yaml.__version__)"
python3 bench/rewrite_compare.py "$work/repo" "$work/tagwatch" "$work/ruamel"
python3 - "$work/hyperfine.json" <<'PY'
import json, sys
result = json.load(open(sys.argv[1]))["results"][0]
print(f"tagwatch set --dry-run: mean {result['mean']:.3f} s, min {result['min']:.3f} s, max {result['max']:.3f} s over {len(result['times'])} runs")
PY

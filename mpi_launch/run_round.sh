#!/usr/bin/env bash
# One fedsecure aggregation round under mpirun: rank 0 is the server, ranks 1..N-1 the clients.
#
#   mpi_launch/run_round.sh -n RANKS [-f HOSTFILE] [-i IFACE] [--] [fedsecure mpi-round options]
#
#   mpi_launch/run_round.sh -n 8 -- --config mpi_launch/configs/secagg_dropouts.toml --out r.json
#   mpi_launch/run_round.sh -n 16 -f hosts -i eth1 -- --protocol secagg --dim 100000
#
# Environment: MPIRUN (default: mpirun on PATH), PYTHON (default: this host's python3, by
# absolute path: every host must have the same Python environment at the same path).
# With MPICH (Hydra) the job is started with -disable-auto-cleanup, so it outlives a rank that
# dies (--crash, a signal, or a real failure) and the survivors still finish the round; without
# it Hydra kills every rank as soon as one exits.  Exit status: mpirun's (0 round finished and
# checked, 1 aborted or mismatch, 2 bad options, 75 a rank was lost), or 2 for a bad -n.
# See mpi_launch/README.md and docs/mpi.md.
set -euo pipefail

# The comment block above (every line from the second up to the first non-comment one).
help_text() { sed -n '2,/^[^#]/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
usage() { help_text >&2; exit 2; }

ranks="" hostfile="" iface=""
while [ $# -gt 0 ]; do
  case "$1" in
    -n|--ranks) ranks="${2:?}"; shift 2 ;;
    -f|--hostfile) hostfile="${2:?}"; shift 2 ;;
    -i|--iface) iface="${2:?}"; shift 2 ;;
    -h|--help) help_text; exit 0 ;;
    --) shift; break ;;
    *) break ;;
  esac
done
case "$ranks" in ''|*[!0-9]*) echo "run_round.sh: -n RANKS (>= 3) is required" >&2; usage ;; esac
[ "$ranks" -ge 3 ] || { echo "run_round.sh: need >= 3 ranks (1 server + 2 clients)" >&2; exit 2; }

launcher="${MPIRUN:-mpirun}"
python="${PYTHON:-$(command -v python3)}"
command -v "$launcher" >/dev/null || { echo "run_round.sh: $launcher not found (pip install 'fedsecure[mpi]')" >&2; exit 2; }

args=()
version="$("$launcher" --version 2>&1 || true)"
if grep -qi hydra <<<"$version"; then                        # MPICH
  args+=(-disable-auto-cleanup)
  [ -n "$hostfile" ] && args+=(-f "$hostfile")
  [ -n "$iface" ] && args+=(-iface "$iface")
else                                                         # Open MPI and others
  echo "run_round.sh: $launcher is not MPICH's Hydra: a rank that dies ends the whole job" >&2
  [ -n "$hostfile" ] && args+=(--hostfile "$hostfile")
  [ -n "$iface" ] && args+=(--mca btl_tcp_if_include "$iface" --mca oob_tcp_if_include "$iface")
fi
args+=(-n "$ranks")

exec "$launcher" "${args[@]}" "$python" -m fedsecure mpi-round "$@"

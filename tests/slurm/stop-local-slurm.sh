#!/usr/bin/env bash
# Stop only the daemons started by start-local-slurm.sh (PIDs from its pid files).
#   stop-local-slurm.sh                  all of them
#   stop-local-slurm.sh slurmd slurmctld only these (names as in the start script's log)
# Copied from ../shared/slurm/ (the names argument added for tests/test_slurm.py).
set -uo pipefail
ONLY=" $* "
BASE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PIDDIR="${PIDDIR:-${TMPDIR:-/tmp}/local-slurm/pids}"
# order: compute node, controller, dbd, database, auth
for entry in slurmd:slurmd slurmctld:slurmctld slurmdbd:slurmdbd mariadbd:mariadbd munged:munged; do
  name=${entry%%:*}; comm=${entry##*:}; f="$PIDDIR/$name.pid"
  [ $# -eq 0 ] || [[ "$ONLY" == *" $name "* ]] || continue
  [ -s "$f" ] || continue
  p=$(cat "$f")
  if [ -d "/proc/$p" ] && [ "$(cat /proc/$p/comm 2>/dev/null)" = "$comm" ]; then
    kill "$p"
    for _ in $(seq 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$p" 2>/dev/null; then echo "$name ($p) did not exit; sending KILL"; kill -9 "$p"; fi
    echo "stopped $name (pid $p)"
  else
    echo "$name (pid $p) not running"
  fi
  rm -f "$f"
done

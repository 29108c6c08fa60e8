#!/usr/bin/env bash
# Start a single-node SLURM "cluster" on this (container/VM) host, no systemd needed.
# Idempotent: installs packages only if missing, rewrites configs, starts only daemons
# that are not already running, waits until `sinfo` reports the node idle.
#
#   ACCOUNTING=1 (default): also mariadb + slurmdbd, so `sacct` works and the
#                snakemake slurm plugin works with its default settings.
#   ACCOUNTING=0: no accounting DB (lighter, ~no extra packages); snakemake then
#                MUST be run with `--slurm-status-command squeue` (else it hangs).
#
# PIDs of started daemons are stored in $PIDDIR; stop with stop-local-slurm.sh.
# Copied from ../shared/slurm/ (only this line added) so the SLURM test is self-contained.
set -euo pipefail

ACCOUNTING="${ACCOUNTING:-1}"
BASE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PIDDIR="${PIDDIR:-${TMPDIR:-/tmp}/local-slurm/pids}"
DBPASS="${SLURM_DBPASS:-slurmdbpass}"
T0=$(date +%s)
log() { echo "[start-local-slurm $(( $(date +%s) - T0 ))s] $*"; }
mkdir -p "$PIDDIR"
echo "$ACCOUNTING" > "$PIDDIR/accounting.mode"

# alive NAME COMM : true if pidfile $PIDDIR/NAME.pid points to a live process named COMM
alive() {
  local f="$PIDDIR/$1.pid" p
  [ -s "$f" ] || return 1
  p=$(cat "$f")
  [ -d "/proc/$p" ] && [ "$(cat /proc/$p/comm 2>/dev/null)" = "$2" ]
}
# wait_pidfile SRC NAME : wait for daemon pidfile SRC, copy it to $PIDDIR/NAME.pid
wait_pidfile() {
  for _ in $(seq 100); do [ -s "$1" ] && break; sleep 0.2; done
  [ -s "$1" ] || { echo "ERROR: $1 not created" >&2; return 1; }
  cp "$1" "$PIDDIR/$2.pid"
}

# ---------------------------------------------------------------- packages
PKGS="slurm-wlm munge"
[ "$ACCOUNTING" = 1 ] && PKGS="$PKGS slurmdbd mariadb-server"
MISSING=""
# installed, not merely known to dpkg: a removed package keeps its config files and
# `dpkg -s` still succeeds for it ("deinstall ok config-files")
installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }
for p in $PKGS; do installed "$p" || MISSING="$MISSING $p"; done
if [ -n "$MISSING" ]; then
  log "installing:$MISSING"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q $MISSING >/dev/null
fi
log "slurm $(dpkg-query -W -f='${Version}' slurmctld), munge $(dpkg-query -W -f='${Version}' munge)"

# ---------------------------------------------------------------- munge
if [ ! -s /etc/munge/munge.key ]; then
  log "creating munge key"
  if [ -x /usr/sbin/mungekey ]; then /usr/sbin/mungekey --create --keyfile=/etc/munge/munge.key
  else /usr/sbin/create-munge-key -f; fi
fi
mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge
chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge
chmod 700 /etc/munge /var/lib/munge /var/log/munge; chmod 755 /run/munge
chmod 400 /etc/munge/munge.key
if alive munged munged; then log "munged already running (pid $(cat "$PIDDIR/munged.pid"))"
else
  rm -f /run/munge/munged.pid
  runuser -u munge -- /usr/sbin/munged --force
  wait_pidfile /run/munge/munged.pid munged
  log "munged started (pid $(cat "$PIDDIR/munged.pid"))"
fi
munge -n | unmunge >/dev/null || { echo "ERROR: munge self-test failed" >&2; exit 1; }

# ---------------------------------------------------------------- slurm.conf
H=$(hostname -s)
AVAIL_MB=$(awk '/MemAvailable/ {print int($2/1024)}' /proc/meminfo)
REALMEM=$(( AVAIL_MB * 90 / 100 ))
NCPU=$(nproc --all)  # --all: ignore OMP_NUM_THREADS, which the test suite sets to 1
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/slurm
chown slurm:slurm /var/log/slurm; chmod 755 /run/slurm
if [ "$ACCOUNTING" = 1 ]; then
  ACCT="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1"
else
  ACCT="AccountingStorageType=accounting_storage/none"
fi
NEWCONF=$(cat <<EOF
# written by $BASE/start-local-slurm.sh
ClusterName=local
SlurmctldHost=${H}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
${ACCT}
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
# keep finished jobs visible to squeue for 5 min (snakemake needs >= 3x status interval)
MinJobAge=300
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=${H} NodeAddr=127.0.0.1 CPUs=${NCPU} RealMemory=${REALMEM} State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
)
CONF_CHANGED=0
if [ ! -f /etc/slurm/slurm.conf ] || [ "$(cat /etc/slurm/slurm.conf)" != "$NEWCONF" ]; then
  # ignore RealMemory-only drift on an already running cluster (a CPU change is rewritten)
  if [ -f /etc/slurm/slurm.conf ] && [ "$(sed 's/RealMemory=[0-9]*//' /etc/slurm/slurm.conf)" = "$(echo "$NEWCONF" | sed 's/RealMemory=[0-9]*//')" ]; then
    :
  else
    echo "$NEWCONF" > /etc/slurm/slurm.conf; CONF_CHANGED=1
    log "wrote /etc/slurm/slurm.conf (RealMemory=${REALMEM}, CPUs=${NCPU})"
  fi
fi

# ---------------------------------------------------------------- accounting (mariadb + slurmdbd)
if [ "$ACCOUNTING" = 1 ]; then
  mkdir -p /run/mysqld; chown mysql:root /run/mysqld
  if alive mariadbd mariadbd; then log "mariadbd already running"
  else
    rm -f /run/mysqld/mysqld.pid
    setsid nohup /usr/sbin/mariadbd --user=mysql --pid-file=/run/mysqld/mysqld.pid \
      --socket=/run/mysqld/mysqld.sock --bind-address=127.0.0.1 \
      >/var/log/mariadbd-local.log 2>&1 </dev/null &
    wait_pidfile /run/mysqld/mysqld.pid mariadbd
    for _ in $(seq 100); do mariadb -e 'select 1' >/dev/null 2>&1 && break; sleep 0.2; done
    log "mariadbd started (pid $(cat "$PIDDIR/mariadbd.pid"))"
  fi
  mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '${DBPASS}';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
  cat > /etc/slurm/slurmdbd.conf <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=slurm
DebugLevel=info
LogFile=/var/log/slurm/slurmdbd.log
PidFile=/run/slurm/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=${DBPASS}
EOF
  chown slurm:slurm /etc/slurm/slurmdbd.conf; chmod 600 /etc/slurm/slurmdbd.conf
  chmod 777 /run/slurm   # slurmdbd runs as user slurm and writes its pidfile here
  if alive slurmdbd slurmdbd; then log "slurmdbd already running"
  else
    rm -f /run/slurm/slurmdbd.pid
    slurmdbd
    wait_pidfile /run/slurm/slurmdbd.pid slurmdbd
    for _ in $(seq 100); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 0.2; done
    log "slurmdbd started (pid $(cat "$PIDDIR/slurmdbd.pid"))"
  fi
  sacctmgr -n list cluster format=cluster | grep -qw local || sacctmgr -i add cluster local >/dev/null
fi

# ---------------------------------------------------------------- slurmctld + slurmd
# (a config change requires restarting our own daemons; only ones we started)
if [ "$CONF_CHANGED" = 1 ]; then
  for d in slurmd slurmctld; do
    if alive $d $d; then
      p=$(cat "$PIDDIR/$d.pid"); log "config changed: restarting $d ($p)"
      kill "$p"; for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
      rm -f "$PIDDIR/$d.pid"
    fi
  done
fi
if alive slurmctld slurmctld; then log "slurmctld already running"
else
  rm -f /run/slurm/slurmctld.pid; slurmctld
  wait_pidfile /run/slurm/slurmctld.pid slurmctld
  log "slurmctld started (pid $(cat "$PIDDIR/slurmctld.pid"))"
fi
if alive slurmd slurmd; then log "slurmd already running"
else
  rm -f /run/slurm/slurmd.pid; slurmd
  wait_pidfile /run/slurm/slurmd.pid slurmd
  log "slurmd started (pid $(cat "$PIDDIR/slurmd.pid"))"
fi

# ---------------------------------------------------------------- wait for idle node
for _ in $(seq 120); do
  st=$(sinfo -h -n "$H" -o %t 2>/dev/null || true)
  case "$st" in idle|mix|alloc) break;; down*|drain*) scontrol update nodename="$H" state=resume 2>/dev/null || true;; esac
  sleep 0.5
done
sinfo
st=$(sinfo -h -n "$H" -o %t 2>/dev/null || true)
case "$st" in idle|mix|alloc) ;; *) echo "ERROR: node $H state '$st' (see /var/log/slurm/*.log)" >&2; exit 1;; esac
log "SLURM ready (accounting=$ACCOUNTING) in $(( $(date +%s) - T0 ))s"
cat <<EOF
Run snakemake e.g.:
  snakemake --executor slurm --jobs 2 --default-resources slurm_partition=main mem_mb=500 runtime=5 \\
            --slurm-status-command squeue --slurm-init-seconds-before-status-checks 5
Stop the daemons with:  $BASE/stop-local-slurm.sh   (PID files in $PIDDIR)
EOF

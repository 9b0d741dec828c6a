#!/usr/bin/env bash
# `make test-slurm`: a real one-node SLURM cluster on this machine, the tiny workflow through the shipped
# SLURM profile (tests/slurm/test_slurm.py), then every daemon this script started is stopped again.
#
# Needs root (it installs Debian's slurm-wlm and munge with apt-get when they are missing, as CI does on a
# fresh machine) and about 11 minutes on 2 idle cores (three runs of the shrunk demo to the seeds).
# All SLURM state lives in a temp dir; the only file outside
# it is /etc/slurm/slurm.conf, a symlink to the temp config removed again at the end (the script refuses to
# run if a real one exists): the slurm executor's job step drops SLURM_CONF from the environment of its
# nested srun, so only the default config path works inside jobs. The node is this machine at 127.0.0.1 with its real CPU count and memory (`slurmd -C`),
# no GPU: the test profile sets `gpu: 0` for the GPU rules and the code then runs on the CPU.
#
#   tests/slurm/run.sh              install if needed, start, run the test, stop
#   FMWSSS_SLURM_TARGET=results/demo/sam_masks tests/slurm/run.sh    another target (default results/demo/seeds)
#   FMWSSS_SLURM_KEEP=1 ...         keep the state dir (daemon logs, slurm.conf) for debugging
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
PARTITION=test
STATE=$(mktemp -d /tmp/fmwsss-slurm.XXXXXX)
chmod 755 "$STATE"
CONF=$STATE/slurm.conf
ETC_CONF=/etc/slurm/slurm.conf
STARTED_MUNGED=""
LINKED_CONF=""

log() { echo "== test-slurm: $*" >&2; }

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
        return
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "test-slurm: slurm-wlm and munge are not installed and this is not root;" \
             "run: sudo apt-get install slurm-wlm munge" >&2
        exit 2
    fi
    log "installing slurm-wlm and munge (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null
}

start_munged() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        log "munged already running: reusing it"
        return
    fi
    [ -s /etc/munge/munge.key ] || { mungekey --create 2>/dev/null || create-munge-key -f; }
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    install -d -o munge -g munge -m 755 /run/munge
    runuser -u munge -- munged
    STARTED_MUNGED=$(cat /run/munge/munged.pid)
    munge -n | unmunge >/dev/null
}

write_conf() {
    local node
    # the node line as slurmd detects it (real CPUs, sockets, memory), minus the uptime, at 127.0.0.1
    node=$(slurmd -C | head -1)
    node=${node#NodeName=* }
    cat >"$CONF" <<EOF
# one-node test cluster written by tests/slurm/run.sh
ClusterName=fmwsss-test
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# pgid, not linuxproc: a cancelled job's snakemake outlived its killed parent shell under linuxproc
# (re-parented to init, so the process-tree walk missed it); killing the process group gets it
ProctrackType=proctrack/pgid
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
# finished jobs stay visible to squeue for 10 minutes: the plugin's squeue status command relies on it
MinJobAge=600
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
NodeName=$(hostname -s) NodeAddr=127.0.0.1 $node State=UNKNOWN
PartitionName=$PARTITION Nodes=$(hostname -s) Default=YES MaxTime=INFINITE State=UP
EOF
    mkdir -p "$STATE/ctld" "$STATE/d"
    if [ -e "$ETC_CONF" ] || [ -L "$ETC_CONF" ]; then
        echo "test-slurm: $ETC_CONF exists (a real SLURM installation?); not touching it" >&2
        exit 2
    fi
    mkdir -p "$(dirname "$ETC_CONF")"
    ln -s "$CONF" "$ETC_CONF"
    LINKED_CONF=1
}

start_slurm() {
    slurmctld -c
    slurmd
    for _ in $(seq 60); do
        if [ "$(sinfo -h -p "$PARTITION" -o %T 2>/dev/null)" = idle ]; then
            return
        fi
        sleep 1
    done
    echo "test-slurm: the node did not become idle:" >&2
    sinfo -N -l >&2 || true
    tail -20 "$STATE/slurmctld.log" "$STATE/slurmd.log" >&2 || true
    exit 1
}

stop_all() {
    local rc=$?
    set +e
    if [ -f "$STATE/slurmctld.pid" ]; then
        # cancel whatever the test left (a stalled job), wait for it to go, then stop both daemons
        scancel --full --user="$(id -un)" 2>/dev/null
        for _ in $(seq 30); do
            [ -z "$(squeue -h -t PD,R,CG -o %i 2>/dev/null)" ] && break
            sleep 1
        done
        scontrol shutdown >/dev/null 2>&1
        for f in slurmd slurmctld; do
            local pid
            pid=$(cat "$STATE/$f.pid" 2>/dev/null) || continue
            for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
            kill -0 "$pid" 2>/dev/null && kill "$pid"
        done
    fi
    if [ -n "$LINKED_CONF" ]; then
        rm -f "$ETC_CONF"
    fi
    if [ -n "$STARTED_MUNGED" ]; then
        kill "$STARTED_MUNGED" 2>/dev/null
    fi
    if [ "$rc" != 0 ] || [ -n "${FMWSSS_SLURM_KEEP:-}" ]; then
        log "daemon logs and slurm.conf kept in $STATE"
    else
        rm -rf "$STATE"
    fi
    log "daemons stopped (exit $rc)"
    exit "$rc"
}

install_packages
trap stop_all EXIT INT TERM
start_munged
write_conf
start_slurm
log "cluster up: $(sinfo -h -N -o '%N %c CPUs %m MB %T')"
FMWSSS_SLURM_TEST=1 FMWSSS_SLURM_PARTITION=$PARTITION \
    "$PYTHON" -m pytest "$ROOT/tests/slurm" -q -p no:cacheprovider -s "$@"

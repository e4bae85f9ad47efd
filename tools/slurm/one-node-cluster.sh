#!/bin/bash
# SPDX-License-Identifier: MIT
# A one-node Slurm on this machine, for trying the study scripts without a cluster
# (docs/sweeps.md): Debian 12's slurm-wlm and munge, run as root, state under DIR.
#
#   tools/slurm/one-node-cluster.sh start DIR   # then: export SLURM_CONF=DIR/slurm.conf
#   tools/slurm/one-node-cluster.sh stop DIR
set -euo pipefail

action=${1:-}
dir=${2:-}
if [ -z "$action" ] || [ -z "$dir" ]; then
    echo "usage: $0 start|stop DIR" >&2
    exit 2
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
conf=$dir/slurm.conf

case $action in
start)
    for tool in slurmctld slurmd munged; do
        command -v "$tool" > /dev/null || {
            echo "$0: $tool is missing: apt-get install slurm-wlm munge" >&2
            exit 1
        }
    done
    node=$(hostname -s)
    # What slurmd sees (cores, memory), so the node registers as it is.
    hardware=$(slurmd -C | head -n 1 | sed 's/^NodeName=[^ ]* //; s/ UpTime=.*//')
    mkdir -p "$dir/state" "$dir/spool" /run/munge
    cat > "$conf" << CONF
ClusterName=kvs-local
SlurmctldHost=$node
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
MpiDefault=none
NodeName=$node $hardware State=UNKNOWN
PartitionName=main Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF
    chown munge:munge /run/munge
    pgrep -x munged > /dev/null || runuser -u munge -- /usr/sbin/munged
    SLURM_CONF=$conf slurmctld -f "$conf"
    SLURM_CONF=$conf slurmd -f "$conf"
    for _ in $(seq 1 30); do
        if SLURM_CONF=$conf sinfo -h -o %t 2> /dev/null | grep -qx idle; then
            SLURM_CONF=$conf sinfo
            echo "started: export SLURM_CONF=$conf"
            exit 0
        fi
        sleep 1
    done
    echo "$0: the node did not come up; see $dir/slurmctld.log and $dir/slurmd.log" >&2
    exit 1
    ;;
stop)
    for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid"; do
        [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2> /dev/null || true
    done
    echo "stopped (munged left running)"
    ;;
*)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac

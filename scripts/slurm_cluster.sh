#!/usr/bin/env bash
# A single-node SLURM cluster with job accounting, for the tests marked `slurm` (CI).
#   scripts/slurm_cluster.sh up     install (Debian packages) and start munged, mariadb, slurmdbd,
#                                   slurmctld, slurmd as root; prints the bring-up time
#   scripts/slurm_cluster.sh down   stop what `up` started (by pid file)
# Runs as root on Debian 12 without a service manager (a container); both commands are idempotent.
# Container settings: proctrack/linuxproc, task/none, select/cons_tres (no cgroups needed).
# Test settings that shorten waits (real clusters keep SLURM's defaults): a requeued job may start
# again after 10 s instead of 120 s (AuthInfo cred_expire), the scheduler looks at the queue every
# 5 s (sched_interval, bf_interval), a cancelled job is killed 5 s after SIGTERM (KillWait, default 30).
# There is no mail server: MailProg records each mail's arguments in $LOGS/mail.log.
set -euo pipefail

CLUSTER=egg
CONF=/etc/slurm
LOGS=/var/log/slurm
DB_PASSWORD=egg-slurmdbd   # local MariaDB user reachable only through localhost
MAIL_LOG=$LOGS/mail.log

die() { echo "slurm_cluster: $*" >&2; exit 1; }
running() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
wait_for() {  # wait_for <seconds> <what> <command...>
    local limit=$1 what=$2; shift 2
    for _ in $(seq "$limit"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
    die "$what did not come up within ${limit}s (logs: $LOGS)"
}

install_packages() {
    command -v slurmctld >/dev/null && command -v slurmdbd >/dev/null && command -v mariadbd >/dev/null && return
    command -v apt-get >/dev/null || die "slurm-wlm is not installed and there is no apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge slurmdbd mariadb-server >/dev/null
}

write_configs() {
    local node
    node=$(slurmd -C | head -1)   # NodeName=<host> CPUs=... RealMemory=... as slurmd sees this machine
    mkdir -p "$CONF" "$LOGS" /var/spool/slurmctld /var/spool/slurmd
    printf '#!/bin/sh\n# MailProg of the test cluster: one line per mail SLURM sends (-s <subject> <user>)\necho "$*" >>%s\n' \
        "$MAIL_LOG" >"$CONF/record_mail.sh"
    chmod 755 "$CONF/record_mail.sh"
    cat >"$CONF/slurm.conf" <<EOF
ClusterName=$CLUSTER
SlurmctldHost=$(hostname)
AuthType=auth/munge
SlurmUser=root
SlurmdUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
AuthInfo=cred_expire=10
SchedulerParameters=sched_interval=5,bf_interval=5
KillWait=5
MailProg=$CONF/record_mail.sh
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=600
$node State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    cat >"$CONF/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASSWORD
StorageLoc=slurm_acct_db
PidFile=/run/slurmdbd.pid
LogFile=$LOGS/slurmdbd.log
EOF
    chmod 600 "$CONF/slurmdbd.conf"
}

up() {
    local start=$SECONDS
    [[ $EUID -eq 0 ]] || die "must run as root"
    install_packages
    write_configs
    if ! running /run/munge/munged.pid; then
        mkdir -p /run/munge && chown munge:munge /run/munge
        runuser -u munge -- /usr/sbin/munged
    fi
    wait_for 20 munged munge -n
    if ! mariadb-admin ping >/dev/null 2>&1; then
        mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
        (setsid mariadbd --user=mysql >>"$LOGS/mariadb.log" 2>&1 &)
    fi
    wait_for 60 mariadb mariadb-admin ping
    mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASSWORD';
                GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
    running /run/slurmdbd.pid || slurmdbd
    wait_for 60 slurmdbd sacctmgr -n list cluster
    sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER" || sacctmgr -i add cluster "$CLUSTER" >/dev/null
    running /run/slurmctld.pid || slurmctld
    running /run/slurmd.pid || slurmd
    wait_for 60 "the controller's registration with slurmdbd" \
        bash -c "sacctmgr -n -P list cluster format=cluster,controlhost | grep -q '^$CLUSTER|.\+'"
    wait_for 60 "an idle node" bash -c "sinfo -h -o %t | grep -qE '^(idle|mix|alloc)'"
    echo "slurm_cluster: up in $((SECONDS - start)) s: $(sinfo -h -o '%P %D nodes %c CPUs %m MB %t')"
}

down() {
    local pidfile
    for pidfile in /run/slurmd.pid /run/slurmctld.pid /run/slurmdbd.pid; do
        if running "$pidfile"; then kill "$(cat "$pidfile")"; fi
    done
    mariadb-admin ping >/dev/null 2>&1 && mariadb-admin shutdown
    if running /run/munge/munged.pid; then kill "$(cat /run/munge/munged.pid)"; fi
    echo "slurm_cluster: down"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    *) die "usage: $0 up|down" ;;
esac

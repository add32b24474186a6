#!/usr/bin/env bash
# Start a single-node SLURM on localhost for the workflow's SLURM test (Debian 12, slurm 22.05,
# no systemd): munge, MariaDB + slurmdbd (so `sacct`, the executor plugin's default status
# command, works), slurmctld and slurmd, with one fake GPU (GRES on a dummy device file).
# Usage: slurm-up.sh STATE_DIR   -- pids of every daemon started are written to STATE_DIR/pids
set -euo pipefail
state=${1:?usage: slurm-up.sh STATE_DIR}
mkdir -p "$state"
: > "$state/pids"
export DEBIAN_FRONTEND=noninteractive
if ! command -v slurmctld >/dev/null || ! command -v slurmdbd >/dev/null \
   || ! command -v mysqld_safe >/dev/null || ! command -v munged >/dev/null; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends munge slurmctld slurmd slurm-client \
    slurmdbd mariadb-server >/dev/null
fi

# munge: the package creates the key; start the daemon as the munge user
[[ -s /etc/munge/munge.key ]] || mungekey --create
mkdir -p /run/munge && chown munge:munge /run/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  su -s /bin/sh munge -c /usr/sbin/munged
  for _ in $(seq 40); do [[ -s /run/munge/munged.pid ]] && break; sleep 0.25; done
  cat /run/munge/munged.pid >> "$state/pids"
fi

cpus=$(nproc)
mem=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) * 80 / 100 ))
mkdir -p /etc/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm
touch "$state/fake-gpu0"
cat > /etc/slurm/gres.conf <<CONF
NodeName=localhost Name=gpu File=$state/fake-gpu0
CONF
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=gazeloc-ci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
JobCompType=jobcomp/none
MinJobAge=3600
GresTypes=gpu
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=ci Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF

# MariaDB + slurmdbd
mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
if ! mysqladmin ping >/dev/null 2>&1; then
  mysqld_safe --skip-syslog >"$state/mysqld.out" 2>&1 &
  echo $! >> "$state/pids"  # mysqld_safe first, so that it does not restart the server
  for _ in $(seq 120); do mysqladmin ping >/dev/null 2>&1 && break; sleep 0.25; done
  for _ in $(seq 40); do [[ -s /run/mysqld/mysqld.pid ]] && break; sleep 0.25; done
  cat /run/mysqld/mysqld.pid >> "$state/pids"
fi
mysql -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
          CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'gazeloc-ci';
          GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
cat > /etc/slurm/slurmdbd.conf <<CONF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=gazeloc-ci
StorageLoc=slurm_acct_db
LogFile=$state/slurmdbd.log
PidFile=$state/slurmdbd.pid
CONF
chmod 600 /etc/slurm/slurmdbd.conf
slurmdbd
for _ in $(seq 60); do (echo >/dev/tcp/127.0.0.1/6819) 2>/dev/null && break; sleep 0.25; done
cat "$state/slurmdbd.pid" >> "$state/pids"

slurmctld
slurmd -N localhost
for _ in $(seq 80); do sinfo -h -o %T 2>/dev/null | grep -qx idle && break; sleep 0.25; done
cat "$state/slurmctld.pid" "$state/slurmd.pid" >> "$state/pids"
sinfo -h -o "%P %T %G" | grep -q idle

#!/usr/bin/env bash
# Stop every daemon slurm-up.sh started, by the pids it recorded (never by name).
state=${1:?usage: slurm-down.sh STATE_DIR}
[[ -s $state/pids ]] || exit 0
mapfile -t pids < "$state/pids"
kill "${pids[@]}" 2>/dev/null
for _ in $(seq 40); do
  alive=0
  for p in "${pids[@]}"; do
    if [[ -d /proc/$p ]] && ! grep -q '^State:.*Z' "/proc/$p/status" 2>/dev/null; then alive=1; fi
  done
  (( alive )) || break
  sleep 0.25
done
: > "$state/pids"
exit 0

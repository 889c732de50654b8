# Supervision of the local serving stack, sourced by scripts/demo.sh (bash 5.1+:
# wait -n -p). docs/operations.md, "Running the stack locally", says what an
# operator sees.
#
#   sv_add NAME STAGE TIMEOUT LOG CMD...  start CMD as replica NAME, output to LOG
#   sv_hook FUNC CMD...                   run CMD in the background; FUNC STATUS when it ends
#   sv_run                                restart replicas that exit until a signal
#                                         (sv_signal) or a give-up; sets SV_CODE
#   sv_stop                               stop every replica, stage 1 first, then 2, …,
#                                         each stage waited for up to its TIMEOUT seconds
#
# Each replica runs in its own session (setsid): a Ctrl-C in the terminal reaches
# only this script, which then stops the gateway before the servers it calls, so
# streams in flight finish instead of failing when an upscaler goes first.

SV_FAST_SECS=10          # a replica that exits sooner than this after its start crashed fast
SV_GIVE_UP=5             # consecutive fast crashes after which a replica is given up
SV_BACKOFF=(0.5 1 2 4 8) # seconds before restart number 1, 2, 3, …
SV_PREFIX=${SV_PREFIX:-up}

declare -A SV_IDX SV_LOG SV_PID SV_STAGE SV_TIMEOUT SV_STARTED SV_FAST
declare -A SV_JOB # background pid → run:NAME (a replica), restart:NAME (its backoff timer), hook:FUNC
SV_NAMES=()
SV_STOP=  # why supervision ends: a signal's exit status, or give-up
SV_FORCE= # a second signal while stopping: kill what is left at once
SV_CODE=0

sv_log() { echo "$SV_PREFIX: $*" >&2; }

sv_now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

# sv_status RC describes an exit status as wait reports it.
sv_status() {
  if [ "$1" -gt 128 ]; then
    echo "status $1 (killed by SIG$(kill -l $(($1 - 128))))"
  else
    echo "status $1"
  fi
}

sv_add() { # NAME STAGE TIMEOUT LOG CMD...
  local name=$1 i=${#SV_NAMES[@]}
  SV_NAMES+=("$name")
  SV_IDX[$name]=$i SV_STAGE[$name]=$2 SV_TIMEOUT[$name]=$3 SV_LOG[$name]=$4 SV_FAST[$name]=0
  shift 4
  declare -ga "SV_ARGV_$i"
  local -n argv="SV_ARGV_$i"
  argv=("$@")
  : >"${SV_LOG[$name]}"
  sv_spawn "$name"
}

sv_spawn() { # NAME
  local name=$1
  local -n argv="SV_ARGV_${SV_IDX[$name]}"
  # setsid does not fork here (a background job is no group leader), so $! is
  # the server itself: signals and wait reach it, not a wrapper.
  setsid "${argv[@]}" >>"${SV_LOG[$name]}" 2>&1 &
  SV_PID[$name]=$!
  SV_JOB[$!]=run:$name
  SV_STARTED[$name]=$(sv_now_ms)
  sv_log "$name started (pid $!, log ${SV_LOG[$name]})"
}

sv_hook() { # FUNC CMD...
  local fn=$1
  shift
  "$@" &
  SV_JOB[$!]=hook:$fn
}

sv_signal() { # STATUS: the script's exit status for the signal
  if [ -n "$SV_STOP" ]; then
    SV_FORCE=1
  else
    SV_STOP=$1
  fi
}

sv_run() {
  local pid rc job
  while [ -z "$SV_STOP" ]; do
    pid= rc=0
    wait -n -p pid "${!SV_JOB[@]}" || rc=$?
    pid=${pid:-} # wait unsets it when a signal interrupts it
    [ -n "$pid" ] || continue # a signal interrupted the wait; its trap has run
    job=${SV_JOB[$pid]}
    unset "SV_JOB[$pid]"
    case $job in
      run:*) sv_exited "${job#run:}" "$pid" "$rc" ;;
      restart:*) [ -n "$SV_STOP" ] || sv_spawn "${job#restart:}" ;;
      hook:*) "${job#hook:}" "$rc" ;;
    esac
  done
  if [ "$SV_STOP" != give-up ] && [ "$SV_CODE" = 0 ]; then
    SV_CODE=$SV_STOP
  fi
}

sv_exited() { # NAME PID RC
  local name=$1 pid=$2 rc=$3 log=${SV_LOG[$1]}
  local ran=$(($(sv_now_ms) - SV_STARTED[$name]))
  SV_PID[$name]=
  if [ "$ran" -lt $((SV_FAST_SECS * 1000)) ]; then
    SV_FAST[$name]=$((SV_FAST[$name] + 1))
  else
    SV_FAST[$name]=1
  fi
  local n=${SV_FAST[$name]} secs
  secs=$(printf '%d.%01d' $((ran / 1000)) $((ran % 1000 / 100)))
  if [ "$n" -ge "$SV_GIVE_UP" ]; then
    sv_log "$name (pid $pid) exited with $(sv_status "$rc") after ${secs}s, its $n-th exit in a row within ${SV_FAST_SECS}s of starting: giving up and stopping the stack. The end of $log:"
    tail -n 10 "$log" | sed 's/^/    /' >&2
    SV_STOP=give-up SV_CODE=1
    return
  fi
  local delay=${SV_BACKOFF[$((n <= ${#SV_BACKOFF[@]} ? n - 1 : ${#SV_BACKOFF[@]} - 1))]}
  sv_log "$name (pid $pid) exited with $(sv_status "$rc") after ${secs}s; log: $log; restarting in ${delay}s (fast exit $n of $SV_GIVE_UP before giving up)"
  echo "--- $SV_PREFIX: exited with $(sv_status "$rc"); restarting in ${delay}s ($(date '+%F %T'))" >>"$log"
  sleep "$delay" &
  SV_JOB[$!]=restart:$name
}

sv_stop() {
  trap 'SV_FORCE=1' INT TERM HUP
  SV_STOP=${SV_STOP:-exit}
  local pid stage
  # Nothing restarts from here on; hooks are not waited for.
  for pid in "${!SV_JOB[@]}"; do
    case ${SV_JOB[$pid]} in
      run:*) ;;
      *) kill "$pid" 2>/dev/null || true
        unset "SV_JOB[$pid]" ;;
    esac
  done
  local stages
  stages=$(printf '%s\n' "${SV_STAGE[@]}" | sort -un)
  for stage in $stages; do
    sv_stop_stage "$stage"
  done
}

sv_stop_stage() { # STAGE
  local name timeout=0
  local -A left # pid → name
  for name in "${SV_NAMES[@]}"; do
    if [ "${SV_STAGE[$name]}" = "$1" ] && [ -n "${SV_PID[$name]}" ]; then
      left[${SV_PID[$name]}]=$name
      [ "${SV_TIMEOUT[$name]}" -gt "$timeout" ] && timeout=${SV_TIMEOUT[$name]}
    fi
  done
  [ ${#left[@]} -gt 0 ] || return 0
  sv_log "stopping ${left[*]} (SIGTERM; up to ${timeout}s)"
  kill -TERM "${!left[@]}" 2>/dev/null || true
  sleep "$timeout" &
  local timer=$! killed= pid rc waitfor
  while [ ${#left[@]} -gt 0 ]; do
    if [ -n "$SV_FORCE" ] && [ -z "$killed" ]; then
      sv_log "stopping at once: killing ${left[*]} (SIGKILL)"
      kill -KILL "${!left[@]}" 2>/dev/null || true
      killed=1
    fi
    waitfor=("${!left[@]}")
    [ -z "$timer" ] || waitfor+=("$timer")
    pid= rc=0
    wait -n -p pid "${waitfor[@]}" || rc=$?
    pid=${pid:-}
    if [ -n "$timer" ] && [ "$pid" = "$timer" ]; then
      sv_log "${left[*]} did not stop within ${timeout}s: killing (SIGKILL)"
      kill -KILL "${!left[@]}" 2>/dev/null || true
      killed=1 timer=
      continue
    fi
    [ -n "$pid" ] || continue # a signal: SV_FORCE is set, handled above
    name=${left[$pid]}
    unset "left[$pid]" "SV_JOB[$pid]"
    SV_PID[$name]=
    sv_log "$name stopped ($(sv_status "$rc"))"
  done
  [ -z "$timer" ] || kill "$timer" 2>/dev/null || true
}

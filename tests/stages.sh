# Stages for tests/run.sh and .ci/run (sourced): each stage is a command run in the background
# with its output in its own log file; waiting on a stage prints one line (ok/FAIL and its
# seconds), and on failure the stage's log. `stages_summary` prints every stage's time and a
# closing count of the tests the logs report, and fails if any stage did.
#
#   stage_start NAME CMD...   start a stage          stage_wait NAME...   wait for stages
#   stage_run NAME CMD...     start and wait         stages_ok || ...     none failed so far
# STAGE_LOG_DIR picks where the logs go (default: a new temporary directory).

STAGE_LOG_DIR=${STAGE_LOG_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/ringway-stages.XXXXXX")}
mkdir -p "$STAGE_LOG_DIR"
# Lines of a failed stage's log printed in full; past that, its first and last lines and every
# line that names a failure.
STAGE_LOG_LINES=1500
declare -A stage_pid=() stage_secs=() stage_rc=()
stage_names=()

stage_start() {
  local name=$1
  shift
  echo "-> $name: $* (log: $STAGE_LOG_DIR/$name.log)"
  local t0
  t0=$(date +%s)
  # The stage's own seconds, written when it ends (not when it is waited for). The command
  # runs with `set -e` in a subshell of its own, whatever this shell's options.
  (
    set +e
    (
      set -e
      "$@"
    ) >"$STAGE_LOG_DIR/$name.log" 2>&1 </dev/null
    rc=$?
    echo $(($(date +%s) - t0)) >"$STAGE_LOG_DIR/$name.secs"
    exit "$rc"
  ) &
  stage_pid[$name]=$!
  stage_names+=("$name")
}

stage_print_log() {
  local log=$STAGE_LOG_DIR/$1.log lines
  lines=$(wc -l <"$log")
  echo "---- $1.log ($lines lines) ----"
  if [ "$lines" -le "$STAGE_LOG_LINES" ]; then
    cat "$log"
  else
    head -n 50 "$log"
    echo "[...] lines that name a failure:"
    grep -nE 'FAIL|panicked|error(\[|:)|failed|Error' "$log" | head -n 300 || true
    echo "[...] the last 600 lines:"
    tail -n 600 "$log"
  fi
  echo "---- end of $1.log ----"
}

stage_wait() {
  local name rc
  for name in "$@"; do
    rc=0
    wait "${stage_pid[$name]}" || rc=$?
    stage_rc[$name]=$rc
    stage_secs[$name]=$(cat "$STAGE_LOG_DIR/$name.secs" 2>/dev/null || echo "?")
    if [ "$rc" = 0 ]; then
      echo "ok   $name (${stage_secs[$name]} s)"
    else
      echo "FAIL $name (exit $rc, ${stage_secs[$name]} s)"
      stage_print_log "$name"
    fi
  done
}

stage_run() {
  stage_start "$@"
  stage_wait "$1"
}

stages_ok() {
  local name
  for name in "${stage_names[@]}"; do
    [ "${stage_rc[$name]:-0}" = 0 ] || return 1
  done
}

# Tests the logs report passed and failed: cargo test, pytest, the TypeScript SDK runner.
stages_count() {
  local logs=() log
  # Not a log of a nested run of stages (tests/run.sh under .ci/run): its stages' logs are
  # counted themselves, and it may hold copies of them.
  for log in "$STAGE_LOG_DIR"/*.log; do
    grep -q '^== stage times (logs: ' "$log" || logs+=("$log")
  done
  cat /dev/null "${logs[@]}" | python3 -c '
import re, sys
p = f = 0
for line in sys.stdin:
    m = re.match(r"test result: \w+\. (\d+) passed; (\d+) failed", line)
    if m:
        p += int(m[1]); f += int(m[2]); continue
    m = re.match(r"=+ (?:(\d+) failed, )?(\d+) passed.* in [\d.]+s", line)
    if m:
        f += int(m[1] or 0); p += int(m[2]); continue
    m = re.match(r"ok: \S+ on \S+: (\d+) passed", line)
    if m:
        p += int(m[1])
print(p, f)'
}

stages_summary() {
  local name passed failed
  echo "== stage times (logs: $STAGE_LOG_DIR)"
  for name in "${stage_names[@]}"; do
    printf '%-20s %5s s  %s\n' "$name" "${stage_secs[$name]:-?}" \
      "$([ "${stage_rc[$name]:-running}" = 0 ] && echo ok || echo "FAIL (${stage_rc[$name]:-not finished})")"
  done
  read -r passed failed < <(stages_count)
  if stages_ok; then
    echo "tests: $passed passed, $failed failed"
  else
    echo "FAIL: stage(s) failed; tests: $passed passed, $failed failed"
    return 1
  fi
}

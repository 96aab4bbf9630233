# Shared by the agent tests (sourced): fail, and start a ringway process.
# Needs: $bin (the ringway binary), START_TIMEOUT (seconds), a `pids` array the caller kills.

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# Starts a ringway process logging to $1 (other arguments: its command line); sets `addr` to
# the http://ADDR it announces.
start() {
  local log=$1
  shift
  "$bin" "$@" --listen 127.0.0.1:0 --driver "${RINGWAY_TEST_DRIVER:-auto}" >/dev/null 2>"$log" &
  pids+=($!)
  local deadline=$((SECONDS + START_TIMEOUT))
  addr=""
  while [ -z "$addr" ]; do
    [ "$SECONDS" -lt "$deadline" ] || { cat "$log" >&2; fail "ringway $1 did not start"; }
    sleep 0.1
    addr=$(grep -o 'listening on http://[0-9.:]*' "$log" | head -1 | sed 's/.*http:/http:/') || true
  done
}

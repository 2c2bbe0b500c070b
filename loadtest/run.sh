#!/usr/bin/env bash
# One load-test run: the gateway against a bare hyper pass-through hop and against the mock
# Bedrock directly, on loopback, in one go. Prints one table (loadtest/report.py) and keeps
# the raw figures in $OUT. Method: loadtest/README.md.
#
#   loadtest/run.sh            # full run, about 18 minutes
#   QUICK=1 loadtest/run.sh    # shorter phases, about 2 minutes
#
# Settings (environment): QUICK, ROUNDS (5, or 1 with QUICK), PROBE_ROUNDS_C1 (10) and
# PROBE_ROUNDS_C32 (20) (each ROUNDS with QUICK), OUT, SERVER_CPUS (default 0),
# LOAD_CPUS (default 1), MOCK_CPUS (default SERVER_CPUS), MOCK_CPUS_UNDER_LOAD (default
# LOAD_CPUS), MOCK_SCHED (normal, the default, or batch: see below), FIXED_RATE_NONSTREAM
# (10000) and FIXED_RATE_STREAM (5000) requests per second for the equal-load CPU runs,
# PORT_MOCK (29000), PORT_HOP (29100), PORT_GW (28080), NO_BUILD=1 to reuse $OUT/bin,
# GATEWAY_BIN=path to measure another gateway build against the same mock and hop (HOP_BIN
# likewise), BOLT=1 to measure gateway and hop as optimised by loadtest/bolt.sh,
# UPSTREAM_HTTP2=1 to have hop and gateway reach the mock over HTTP/2 (prior knowledge)
# instead of HTTP/1.1, GATEWAY_CONFIG (configs/loadtest.yaml, or configs/loadtest-http2.yaml
# with UPSTREAM_HTTP2=1).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

QUICK="${QUICK:-0}"
OUT="${OUT:-$ROOT/target/loadtest/$(date +%Y%m%d-%H%M%S)}"
SERVER_CPUS="${SERVER_CPUS:-0}"
LOAD_CPUS="${LOAD_CPUS:-1}"
MOCK_CPUS="${MOCK_CPUS:-$SERVER_CPUS}"
# The mock stands in for Bedrock, which never shares a CPU with the sidecar. On the servers'
# CPU under load, its wake-ups preempt the server being measured in the middle of its work
# (about 0.7 times per gateway request at c=32, 0.3 per hop request) and its 256 connections
# share that CPU's caches: the figures then measure the interference as much as the server.
# So for the oha runs of hop and gateway at c=32 and 256 and at the fixed rates, and for the
# streaming probe at c=32 (all three targets), the mock moves to MOCK_CPUS_UNDER_LOAD (with
# the load generators) and the server under test has its CPU alone; the report's "server CPU
# busy" rows show whether it, not the load side, was the limit. At c=1, in the memory phases,
# and when it is itself the target of oha, the mock runs on MOCK_CPUS: with nothing else busy
# there, keeping it beside the server spares each c=1 request two crossings between CPUs
# (about 80 us each way on this machine's idle vCPUs; loadtest/README.md, "The mock's CPU").
# MOCK_SCHED=batch runs it as SCHED_BATCH, whose wake-ups do not preempt (loadtest/README.md
# has a run with it).
MOCK_CPUS_UNDER_LOAD="${MOCK_CPUS_UNDER_LOAD:-$LOAD_CPUS}"
MOCK_SCHED="${MOCK_SCHED:-normal}"
PORT_MOCK="${PORT_MOCK:-29000}"
PORT_HOP="${PORT_HOP:-29100}"
PORT_GW="${PORT_GW:-28080}"
JOBS="${CARGO_BUILD_JOBS:-2}"

# The oha runs and the probe go in ROUNDS interleaved rounds (direct, hop, gateway; then
# again), pooled per target: this machine drifts by more than the differences being measured
# within a minute, and a figure taken in one block per target carries that drift into its
# ratio. Each oha round lasts OHA_SECS. The probe runs PROBE_C1 streams a round at c=1 and
# PROBE_C32 at c=32 (fewer would add synchronised starts), in rounds of its own. The round
# counts are set by how far each checked figure moves from round to round against the room its
# check leaves: five rounds for the CPU ratios (about 0.1 a round against 0.08 of room), ten for
# the c=1 time to first chunk (21 µs against 10), twenty for the c=32 gap (39 µs against a check
# of 20 µs either way); loadtest/README.md, "Five rounds for the oha figures" and "More rounds
# for the streaming probe", has the figures.
if [[ "$QUICK" == 1 ]]; then
    OHA_SECS=2; ROUNDS="${ROUNDS:-1}"; PROBE_C1=20; PROBE_C32=64; HOLD_LEVELS="4000"; HOLD_FRAMES=8; STALL_STREAMS=32
    PROBE_ROUNDS_C1="${PROBE_ROUNDS_C1:-$ROUNDS}"; PROBE_ROUNDS_C32="${PROBE_ROUNDS_C32:-$ROUNDS}"
else
    OHA_SECS=4; ROUNDS="${ROUNDS:-5}"; PROBE_C1=34; PROBE_C32=320; HOLD_LEVELS="4000 10000"; HOLD_FRAMES=16; STALL_STREAMS=64
    PROBE_ROUNDS_C1="${PROBE_ROUNDS_C1:-10}"; PROBE_ROUNDS_C32="${PROBE_ROUNDS_C32:-20}"
fi
FIXED_RATE_NONSTREAM="${FIXED_RATE_NONSTREAM:-10000}"
FIXED_RATE_STREAM="${FIXED_RATE_STREAM:-5000}"
HOLD_DELAY_US=500000   # one frame every 0.5 s: streams stay open HOLD_FRAMES/2 seconds
STALL_SECS=4
STALL_FRAMES=50000     # about 6.5 MB of event stream per stalled request

mkdir -p "$OUT/bin" "$OUT/logs"
LOAD_AT_START="$(cut -d' ' -f1-3 /proc/loadavg)"
RESULTS="$OUT/results.jsonl"
: >"$RESULTS"
# shellcheck source=loadtest/lib.sh
source loadtest/lib.sh

# --- tools -------------------------------------------------------------------------------
if ! command -v oha >/dev/null 2>&1; then
    log "oha not found: installing it with 'cargo install oha --locked' (a few minutes, once)"
    cargo install oha --locked -j"$JOBS" >&2
fi
command -v taskset >/dev/null 2>&1 || { log "taskset is required (util-linux)"; exit 1; }
case "$MOCK_SCHED" in
    normal) MOCK_PREFIX=() ;;
    batch) command -v chrt >/dev/null 2>&1 || { log "chrt is required (util-linux)"; exit 1; }
           MOCK_PREFIX=(chrt --batch 0) ;;
    *) log "MOCK_SCHED must be normal or batch"; exit 1 ;;
esac
command -v python3 >/dev/null 2>&1 || { log "python3 is required for the report"; exit 1; }

# 10,000 held streams need about 10,000 descriptors in each server (HTTP/2 downstream, one
# HTTP/1.1 connection per stream upstream) and in the mock.
HARD="$(ulimit -Hn)"
if [[ "$HARD" != unlimited && "$HARD" -lt 30000 ]]; then
    ulimit -n "$HARD"
else
    ulimit -n 30000
fi
log "open files limit: $(ulimit -n)"

# --- build -------------------------------------------------------------------------------
if [[ "${NO_BUILD:-0}" != 1 ]]; then
    log "building release binaries"
    cargo build -j"$JOBS" --release --bin ai-gateway --example hop --example sse_probe >&2
    TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
    # Copied, so a build in a shared target dir cannot swap them mid-run.
    cp "$TARGET_DIR/release/ai-gateway" "$TARGET_DIR/release/examples/hop" \
        "$TARGET_DIR/release/examples/sse_probe" "$OUT/bin/"
fi
BIN="$OUT/bin"
if [[ "${BOLT:-0}" == 1 ]]; then
    # Both servers laid out by a profile of this load (loadtest/bolt.sh); the mock, the probe
    # and oha stay as built.
    log "optimising gateway and hop with BOLT (loadtest/bolt.sh)"
    BOLT_DIR="$OUT/bolt" loadtest/bolt.sh
    GATEWAY_BIN="$OUT/bolt/ai-gateway"
    HOP_BIN="$OUT/bolt/hop"
fi
GATEWAY_BIN="${GATEWAY_BIN:-$BIN/ai-gateway}"
HOP_BIN="${HOP_BIN:-$BIN/hop}"
UPSTREAM_HTTP2="${UPSTREAM_HTTP2:-0}"
if [[ "$UPSTREAM_HTTP2" == 1 ]]; then
    HOP_HTTP2=true; GATEWAY_CONFIG="${GATEWAY_CONFIG:-configs/loadtest-http2.yaml}"
else
    HOP_HTTP2=false; GATEWAY_CONFIG="${GATEWAY_CONFIG:-configs/loadtest.yaml}"
fi

# --- processes ---------------------------------------------------------------------------
declare -A PID=()
cleanup() {
    for name in "${!PID[@]}"; do
        kill "${PID[$name]}" 2>/dev/null || true
    done
    for name in "${!PID[@]}"; do
        wait "${PID[$name]}" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_mock() {
    "${MOCK_PREFIX[@]}" taskset -c "$MOCK_CPUS" "$BIN/ai-gateway" mock-bedrock --fast --listen "127.0.0.1:$PORT_MOCK" \
        --frames 20 >"$OUT/logs/mock.log" 2>&1 &
    PID[mock]=$!
    wait_port "$PORT_MOCK"
}
start_hop() {
    taskset -c "$SERVER_CPUS" "$HOP_BIN" --listen "127.0.0.1:$PORT_HOP" \
        --upstream "http://127.0.0.1:$PORT_MOCK" --http2 "$HOP_HTTP2" >>"$OUT/logs/hop.log" 2>&1 &
    PID[hop]=$!
    wait_port "$PORT_HOP"
}
start_gateway() {
    env "${MOCK_AWS_ENV[@]}" taskset -c "$SERVER_CPUS" "$GATEWAY_BIN" serve --config "$GATEWAY_CONFIG" \
        --listen "127.0.0.1:$PORT_GW" --bedrock-endpoint "http://127.0.0.1:$PORT_MOCK" \
        >>"$OUT/logs/gateway.log" 2>&1 &
    PID[gateway]=$!
    wait_port "$PORT_GW"
}
restart() {
    local name="$1"
    kill "${PID[$name]}" 2>/dev/null || true
    wait "${PID[$name]}" 2>/dev/null || true
    "start_$name"
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
mock_stat() { curl -s "http://127.0.0.1:$PORT_MOCK/__stats"; }
place_mock() { taskset -a -p -c "$1" "${PID[mock]}" >/dev/null; }
CLK_TCK="$(getconf CLK_TCK)"

# Request bodies (loadtest/lib.sh): Converse for the mock and the hop, OpenAI for the gateway.
url_for() { # target mode
    case "$1:$2" in
        direct:nonstream) echo "http://127.0.0.1:$PORT_MOCK/model/$MODEL_ID/converse" ;;
        direct:stream) echo "http://127.0.0.1:$PORT_MOCK/model/$MODEL_ID/converse-stream" ;;
        hop:nonstream) echo "http://127.0.0.1:$PORT_HOP/model/$MODEL_ID/converse" ;;
        hop:stream) echo "http://127.0.0.1:$PORT_HOP/model/$MODEL_ID/converse-stream" ;;
        gateway:*) echo "http://127.0.0.1:$PORT_GW/v1/chat/completions" ;;
    esac
}
body_for() {
    case "$1:$2" in
        gateway:nonstream) echo "$OPENAI_BODY" ;;
        gateway:stream) echo "$OPENAI_STREAM_BODY" ;;
        *) echo "$CONVERSE_BODY" ;;
    esac
}

# --- phase 1: idle -----------------------------------------------------------------------
log "starting hop and gateway on CPU $SERVER_CPUS, mock (fast, $MOCK_SCHED scheduling) on CPU $MOCK_CPUS (CPU $MOCK_CPUS_UNDER_LOAD under load); load generators on CPU $LOAD_CPUS"
start_mock
start_hop
start_gateway
sleep 0.5
for t in direct hop gateway; do
    curl -sf -o /dev/null -H 'content-type: application/json' -d "$(body_for $t nonstream)" "$(url_for $t nonstream)" \
        || { log "warm-up request to $t failed"; tail -20 "$OUT"/logs/*.log >&2; exit 1; }
done
sleep 0.5
printf '{"kind":"idle","mock_kb":%s,"hop_kb":%s,"gateway_kb":%s}\n' \
    "$(rss_kb "${PID[mock]}")" "$(rss_kb "${PID[hop]}")" "$(rss_kb "${PID[gateway]}")" >>"$RESULTS"

# --- phase 2: oha matrix -----------------------------------------------------------------
run_oha() { # round target mode concurrency [rate: requests per second, default as fast as possible]
    local round="$1" target="$2" mode="$3" c="$4" rate="${5:-0}" url body server file
    url="$(url_for "$target" "$mode")"
    body="$(body_for "$target" "$mode")"
    file="$OUT/oha-$target-$mode-c$c-r$round.json"
    local limit=() mock_cpus="$MOCK_CPUS"
    if [[ "$target" != direct && "$c" != 1 ]]; then mock_cpus="$MOCK_CPUS_UNDER_LOAD"; fi
    place_mock "$mock_cpus"
    if [[ "$rate" != 0 ]]; then
        file="$OUT/oha-$target-$mode-c$c-q$rate-r$round.json"
        limit=(-q "$rate")
    fi
    # Warm the pools at this concurrency so connection setup is not in the figures.
    taskset -c "$LOAD_CPUS" oha --no-tui -z 500ms -c "$c" -m POST -T application/json -d "$body" "$url" >/dev/null 2>&1 || true
    local before_mock before_hop before_gw stats_before stats_after
    before_mock="$(cpu_ticks "${PID[mock]}")"
    before_hop="$(cpu_ticks "${PID[hop]}")"
    before_gw="$(cpu_ticks "${PID[gateway]}")"
    stats_before="$(mock_stat)"
    timeout $((OHA_SECS + 30)) taskset -c "$LOAD_CPUS" oha --no-tui --output-format json -z "${OHA_SECS}s" \
        -c "$c" "${limit[@]}" -m POST -T application/json -d "$body" "$url" >"$file"
    stats_after="$(mock_stat)"
    printf '{"kind":"oha","round":%s,"target":"%s","mode":"%s","c":%s,"rate":%s,"mock_cpus":"%s","file":"%s","clk_tck":%s,"cpu_ticks":{"mock":%s,"hop":%s,"gateway":%s},"mock_before":%s,"mock_after":%s}\n' \
        "$round" "$target" "$mode" "$c" "$rate" "$mock_cpus" "$file" "$CLK_TCK" \
        "$(( $(cpu_ticks "${PID[mock]}") - before_mock ))" \
        "$(( $(cpu_ticks "${PID[hop]}") - before_hop ))" \
        "$(( $(cpu_ticks "${PID[gateway]}") - before_gw ))" \
        "$stats_before" "$stats_after" >>"$RESULTS"
    log "oha round $round $target $mode c=$c${limit[*]:+ at $rate/s}: $(python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["summary"]; print(round(s["requestsPerSec"]), "req/s, success", s["successRate"])' "$file")"
}
for mode in nonstream stream; do
    for c in 1 32 256; do
        for round in $(seq 1 "$ROUNDS"); do
            for target in direct hop gateway; do
                run_oha "$round" "$target" "$mode" "$c"
            done
        done
    done
done
# CPU per request at the same offered load: at saturation each server runs at its own rate,
# and the faster one batches more work per wake-up and finds the load generator busier (its
# wake-ups then cost no cross-CPU interrupt), so the ratio there mixes cost with load. At a
# fixed rate every server does the same work per second. The rates are about half of what the
# gateway sustains at c=32 on the machine in README.
for mode in nonstream stream; do
    rate="$FIXED_RATE_NONSTREAM"; [[ "$mode" == stream ]] && rate="$FIXED_RATE_STREAM"
    for round in $(seq 1 "$ROUNDS"); do
        for target in direct hop gateway; do
            run_oha "$round" "$target" "$mode" 32 "$rate"
        done
    done
done
place_mock "$MOCK_CPUS"
printf '{"kind":"peak_after_oha","mock_kb":%s,"hop_kb":%s,"gateway_kb":%s}\n' \
    "$(hwm_kb "${PID[mock]}")" "$(hwm_kb "${PID[hop]}")" "$(hwm_kb "${PID[gateway]}")" >>"$RESULTS"

# --- phase 3: streaming probe ------------------------------------------------------------
probe() { # label target concurrency streams [extra args]
    local label="$1" target="$2" c="$3" n="$4"
    shift 4
    local port api
    case "$target" in
        direct) port="$PORT_MOCK"; api=converse ;;
        hop) port="$PORT_HOP"; api=converse ;;
        gateway) port="$PORT_GW"; api=openai ;;
    esac
    local line mock_cpus="$MOCK_CPUS"
    # At c=32 the probe is a load: the mock (for every target alike, so the added figures
    # subtract like for like) runs beside the probe, and the server under test has its CPU
    # alone, as at c=32 and 256 under oha. The memory phases keep it on MOCK_CPUS.
    if [[ "$label" == latency-* && "$c" != 1 ]]; then mock_cpus="$MOCK_CPUS_UNDER_LOAD"; fi
    place_mock "$mock_cpus"
    line="$(timeout 300 taskset -c "$LOAD_CPUS" "$BIN/sse_probe" --addr "127.0.0.1:$port" --api "$api" \
        --concurrency "$c" --streams "$n" --label "$label" "$@" 2>>"$OUT/logs/probe.log" || true)"
    if [[ -z "$line" ]]; then
        line="{\"label\":\"$label\",\"ok\":0,\"errors\":-1,\"first_error\":\"probe failed\"}"
    fi
    printf '{"kind":"probe","target":"%s","mock_cpus":"%s","result":%s}\n' "$target" "$mock_cpus" "$line" >>"$RESULTS"
    log "probe $label $target: $(python3 -c 'import json,sys; r=json.load(sys.stdin); print("ok", r.get("ok"), "errors", r.get("errors"), "ttfc p50", r.get("ttfc_p50_us"), "us, gap p50", r.get("gap_p50_us"), "us")' <<<"$line")"
}
for c in 1 32; do
    n="$PROBE_C1"; rounds="$PROBE_ROUNDS_C1"
    [[ "$c" == 32 ]] && n="$PROBE_C32" && rounds="$PROBE_ROUNDS_C32"
    for round in $(seq 1 "$rounds"); do
        for target in direct hop gateway; do
            probe "latency-c$c" "$target" "$c" "$n" --frames 100 --delay-us 1000 --samples
        done
    done
done

# --- phase 4: held streams and memory ----------------------------------------------------
sample_rss() { # pid file: VmRSS every 100 ms until killed
    while kill -0 "$1" 2>/dev/null; do
        rss_kb "$1" >>"$2" 2>/dev/null || true
        sleep 0.1
    done
}
memory_run() { # kind target streams [probe args]
    local kind="$1" target="$2" n="$3"
    shift 3
    restart "$target"
    sleep 0.3
    local base samples sampler stats_before
    base="$(rss_kb "${PID[$target]}")"
    samples="$OUT/rss-$kind-$target-$n.txt"
    : >"$samples"
    sample_rss "${PID[$target]}" "$samples" &
    sampler=$!
    stats_before="$(mock_stat)"
    probe "$kind-$n" "$target" "$n" "$n" --mode "$kind" "$@"
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    printf '{"kind":"memory","test":"%s","target":"%s","streams":%s,"base_kb":%s,"peak_kb":%s,"mock_before":%s,"mock_after":%s}\n' \
        "$kind" "$target" "$n" "$base" "$(sort -n "$samples" | tail -1)" "$stats_before" "$(mock_stat)" >>"$RESULTS"
}
for n in $HOLD_LEVELS; do
    extra=()
    # One process may hold at most $(ulimit -n) descriptors: past 8,000 streams the clients
    # multiplex over h2c (100 streams a connection) so each server holds one descriptor per
    # stream (its upstream connection) instead of two.
    if [[ "$n" -gt 8000 ]]; then extra=(--h2 --streams-per-conn 100); fi
    # Over HTTP/2 the hop's client keeps one connection to the mock, which takes 200 streams
    # at a time: the rest would wait their turn, so the hop holds no thousands of streams.
    targets=(hop gateway)
    [[ "$UPSTREAM_HTTP2" == 1 ]] && targets=(gateway)
    for target in "${targets[@]}"; do
        memory_run hold "$target" "$n" --frames "$HOLD_FRAMES" --delay-us "$HOLD_DELAY_US" "${extra[@]}"
        sleep 1
    done
done
for target in hop gateway; do
    memory_run stall "$target" "$STALL_STREAMS" --frames "$STALL_FRAMES" --delay-us 0 --stall-secs "$STALL_SECS"
done
restart hop
restart gateway
sleep 0.5
printf '{"kind":"idle_fresh","hop_kb":%s,"gateway_kb":%s}\n' "$(rss_kb "${PID[hop]}")" "$(rss_kb "${PID[gateway]}")" >>"$RESULTS"

# --- report ------------------------------------------------------------------------------
{
    echo "machine: $(nproc) CPUs, $(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2; exit}'), kernel $(uname -r)"
    echo "pinning: hop and gateway on CPU $SERVER_CPUS, mock on CPU $MOCK_CPUS and on CPU $MOCK_CPUS_UNDER_LOAD for hop and gateway at c=32 and 256 and for the c=32 probe ($MOCK_SCHED scheduling), load generators on CPU $LOAD_CPUS; oha $(oha --version | awk '{print $2}'); $ROUNDS interleaved round(s) of ${OHA_SECS}s per oha figure, $PROBE_ROUNDS_C1 of the c=1 probe and $PROBE_ROUNDS_C32 of the c=32 one; quick=$QUICK"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with local changes)')"
    [[ "$GATEWAY_BIN" == "$BIN/ai-gateway" ]] || echo "gateway binary: $GATEWAY_BIN"
    [[ "$HOP_BIN" == "$BIN/hop" ]] || echo "hop binary: $HOP_BIN"
    echo "upstream: HTTP/$([[ "$UPSTREAM_HTTP2" == 1 ]] && echo 2 || echo 1.1) from hop and gateway to the mock; gateway config $GATEWAY_CONFIG"
    echo "load average (1, 5, 15 min) at start: $LOAD_AT_START, at end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine moves every figure)"
    echo
    python3 loadtest/report.py "$RESULTS"
} | tee "$OUT/report.txt"
log "raw figures: $OUT"

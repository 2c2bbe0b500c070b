#!/usr/bin/env bash
# Post-link optimisation with BOLT: builds the gateway and the bare hop with their relocations
# kept, runs instrumented copies of both under load in front of the fast mock Bedrock, and
# lays out each binary's code by that profile (hot functions together, hot blocks falling
# through, cold blocks moved out of the way). The gateway runs much more distinct code per
# request than the hop, so its instruction cache and TLB gain more from the layout
# (loadtest/README.md, "BOLT"). Writes $BOLT_DIR/ai-gateway (the binary to deploy) and
# $BOLT_DIR/hop.
#
#   loadtest/bolt.sh      # about 10 minutes on 2 cores the first time, most of it the build
#
# Settings (environment): BOLT_DIR (target/bolt: outputs, profiles and logs), BOLT_TARGET_DIR
# (target/bolt-build, cargo's target directory), BOLT_TARGETS ("ai-gateway hop", or either
# alone), CARGO_BUILD_JOBS (2), LLVM_BOLT (found under /usr/lib/llvm-* or on PATH), PORT_BASE
# (29400: the mock; gateway +1, hop +2), TRAIN_SECS (2, per load). Needs llvm-bolt with its
# instrumentation runtime (Debian/Ubuntu: bolt-NN and libbolt-NN-dev, installed with apt-get
# when missing and running as root) and oha (installed with cargo when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

BOLT_DIR="${BOLT_DIR:-$ROOT/target/bolt}"
BOLT_TARGET_DIR="${BOLT_TARGET_DIR:-$ROOT/target/bolt-build}"
JOBS="${CARGO_BUILD_JOBS:-2}"
PORT_BASE="${PORT_BASE:-29400}"
TRAIN_SECS="${TRAIN_SECS:-2}"
read -r -a TARGETS <<<"${BOLT_TARGETS:-ai-gateway hop}"
wants() { [[ " ${TARGETS[*]} " == *" $1 "* ]]; }
# shellcheck source=loadtest/lib.sh
source loadtest/lib.sh

# --- tools -------------------------------------------------------------------------------
find_bolt() {
    if [[ -n "${LLVM_BOLT:-}" ]]; then echo "$LLVM_BOLT"; return; fi
    # The versioned directory first: llvm-bolt finds its instrumentation runtime in ../lib.
    local candidate
    for candidate in /usr/lib/llvm-*/bin/llvm-bolt "$(command -v llvm-bolt || true)"; do
        if [[ -x "$candidate" ]]; then echo "$candidate"; return; fi
    done
}
LLVM_BOLT="$(find_bolt)"
if [[ -z "$LLVM_BOLT" || ! -e "$(dirname "$LLVM_BOLT")/../lib/libbolt_rt_instr.a" ]]; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
        log "llvm-bolt not found: installing it with apt-get"
        newest_bolt() {
            apt-cache search --names-only '^bolt-[0-9]+$' | sed -n 's/^bolt-\([0-9]*\) .*/\1/p' | sort -n | tail -1
        }
        version="$(newest_bolt)"
        if [[ -z "$version" ]]; then
            apt-get update -q >&2
            version="$(newest_bolt)"
        fi
        [[ -n "$version" ]] || { log "no bolt package in the apt sources"; exit 1; }
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "bolt-$version" "libbolt-$version-dev" >&2
        LLVM_BOLT="/usr/lib/llvm-$version/bin/llvm-bolt"
    else
        log "needs llvm-bolt and its instrumentation runtime (libbolt_rt_instr.a); set LLVM_BOLT"
        exit 1
    fi
fi
if ! command -v oha >/dev/null; then
    log "oha not found: installing it with 'cargo install oha --locked'"
    cargo install oha --locked -j"$JOBS" >&2
fi
log "using $LLVM_BOLT ($("$LLVM_BOLT" --version | sed -n 's/.*LLVM version //p' | head -1))"

# --- build -------------------------------------------------------------------------------
# Its own target directory: the extra flag would otherwise rebuild every crate in target/
# back and forth. --emit-relocs keeps the link-time relocations BOLT needs to move whole
# functions, not only the blocks inside them.
log "building release binaries with relocations kept"
# Two builds: the gateway on its own, so that no dev-dependency (the examples') adds features to
# the binary that ships.
WORK="$BOLT_DIR/work"
rm -rf "$WORK"
mkdir -p "$WORK"
CARGO_TARGET_DIR="$BOLT_TARGET_DIR" RUSTFLAGS="-C link-arg=-Wl,--emit-relocs" \
    cargo build -j"$JOBS" --release --bin ai-gateway >&2
cp "$BOLT_TARGET_DIR/release/ai-gateway" "$WORK/ai-gateway"
if wants hop; then
    CARGO_TARGET_DIR="$BOLT_TARGET_DIR" RUSTFLAGS="-C link-arg=-Wl,--emit-relocs" \
        cargo build -j"$JOBS" --release --example hop >&2
    cp "$BOLT_TARGET_DIR/release/examples/hop" "$WORK/hop"
fi

# --- profile -----------------------------------------------------------------------------
log "instrumenting ${TARGETS[*]}"
for name in "${TARGETS[@]}"; do
    "$LLVM_BOLT" "$WORK/$name" -o "$WORK/$name.instr" -instrument \
        -instrumentation-file="$WORK/$name.fdata" >"$WORK/$name.instrument.log" 2>&1
done

# Server on the first CPU, mock and load on the others, as in run.sh.
if [[ "$(nproc)" -ge 2 ]]; then
    SERVER=(taskset -c 0); LOAD=(taskset -c 1-$(($(nproc) - 1)))
else
    SERVER=(); LOAD=()
fi
PORT_MOCK="$PORT_BASE"; PORT_GW=$((PORT_BASE + 1)); PORT_HOP=$((PORT_BASE + 2))
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT
"${LOAD[@]}" "$WORK/ai-gateway" mock-bedrock --fast --listen "127.0.0.1:$PORT_MOCK" --frames 20 \
    >"$WORK/mock.log" 2>&1 &
PIDS+=($!)
wait_port "$PORT_MOCK"
if wants ai-gateway; then
    env "${MOCK_AWS_ENV[@]}" "${SERVER[@]}" "$WORK/ai-gateway.instr" serve --config configs/loadtest.yaml \
        --listen "127.0.0.1:$PORT_GW" --bedrock-endpoint "http://127.0.0.1:$PORT_MOCK" \
        >"$WORK/gateway.log" 2>&1 &
    GW_PID=$!
    PIDS+=("$GW_PID")
    wait_port "$PORT_GW"
fi
if wants hop; then
    "${SERVER[@]}" "$WORK/hop.instr" --listen "127.0.0.1:$PORT_HOP" \
        --upstream "http://127.0.0.1:$PORT_MOCK" --http2 false >"$WORK/hop.log" 2>&1 &
    HOP_PID=$!
    PIDS+=("$HOP_PID")
    wait_port "$PORT_HOP"
fi

# The load run.sh measures: OpenAI chat with and without streaming through the gateway,
# Converse and ConverseStream through the hop and the gateway's native endpoints, at
# concurrency 1, 32 and 256. Every request must succeed, or the profile is of error paths.
train() {
    local url="$1" body="$2" c="$3" out
    out="$("${LOAD[@]}" oha --no-tui --output-format json -z "${TRAIN_SECS}s" -c "$c" -m POST \
        -T application/json -d "$body" "$url")"
    python3 - "$url" "$c" "$out" <<'PY'
import json, sys
url, c, s = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
codes = s.get("statusCodeDistribution", {})
ok = sum(n for code, n in codes.items() if code == "200")
# oha cuts off the requests in flight when its time is up.
errors = {e: n for e, n in s.get("errorDistribution", {}).items() if "deadline" not in e}
if ok == 0 or ok != sum(codes.values()) or errors:
    sys.exit(f"training load failed at {url}, c={c}: {codes} {errors}")
print(f"  {url} c={c}: {ok} requests", file=sys.stderr)
PY
}
log "training"
for c in 1 32 256; do
    if wants ai-gateway; then
        train "http://127.0.0.1:$PORT_GW/v1/chat/completions" "$OPENAI_BODY" "$c"
        train "http://127.0.0.1:$PORT_GW/v1/chat/completions" "$OPENAI_STREAM_BODY" "$c"
    fi
    if wants hop; then
        train "http://127.0.0.1:$PORT_HOP/model/$MODEL_ID/converse" "$CONVERSE_BODY" "$c"
        train "http://127.0.0.1:$PORT_HOP/model/$MODEL_ID/converse-stream" "$CONVERSE_BODY" "$c"
    fi
done
if wants ai-gateway; then
    for op in converse converse-stream; do
        train "http://127.0.0.1:$PORT_GW/model/claude-3-haiku/$op" "$CONVERSE_BODY" 32
    done
fi
# Each server writes its profile as it exits.
if wants ai-gateway; then kill -INT "$GW_PID"; wait "$GW_PID" || true; fi
if wants hop; then kill -TERM "$HOP_PID"; wait "$HOP_PID" || true; fi
for name in "${TARGETS[@]}"; do
    [[ -s "$WORK/$name.fdata" ]] || { log "no profile written by $name"; exit 1; }
done

# --- optimise ----------------------------------------------------------------------------
log "optimising"
for name in "${TARGETS[@]}"; do
    "$LLVM_BOLT" "$WORK/$name" -o "$BOLT_DIR/$name" -data="$WORK/$name.fdata" \
        -reorder-blocks=ext-tsp -reorder-functions=cdsort -split-functions -split-all-cold \
        -split-eh -icf=1 -use-gnu-stack -dyno-stats >"$WORK/$name.optimise.log" 2>&1
    log "$BOLT_DIR/$name: $(grep -m1 'have non-empty execution profile' "$WORK/$name.optimise.log" | sed 's/^BOLT-INFO: //')"
done

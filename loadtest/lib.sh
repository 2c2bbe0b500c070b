# Sourced by run.sh and bolt.sh: logging, waiting for a listener, the environment the gateway
# runs with in front of the mock, and the requests both send.

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Returns once something accepts connections on 127.0.0.1:$1; fails after about 5 s.
wait_port() {
    local _
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    log "nothing listening on port $1"
    return 1
}

# The mock's test key pair, and nothing of the caller's AWS settings: fast mode does not check
# signatures, but the gateway signs every request exactly as it would for Bedrock.
MOCK_AWS_ENV=(
    AWS_ACCESS_KEY_ID=AKIDMOCKBEDROCK00001
    AWS_SECRET_ACCESS_KEY=mock/secret/key/for/the/local/mock/only
    AWS_SESSION_TOKEN= AWS_PROFILE= AWS_EC2_METADATA_DISABLED=true AWS_REGION=us-east-1
)

# The Bedrock model the mock and the hop are asked for, as it goes in a path, and the bodies:
# Converse for mock and hop, OpenAI chat (unary and streamed) for the gateway.
MODEL_ID="anthropic.claude-3-haiku-20240307-v1%3A0"
CONVERSE_BODY='{"messages":[{"role":"user","content":[{"text":"Hello"}]}],"inferenceConfig":{"maxTokens":256}}'
OPENAI_BODY='{"model":"claude-3-haiku","max_tokens":256,"messages":[{"role":"user","content":"Hello"}]}'
OPENAI_STREAM_BODY='{"model":"claude-3-haiku","max_tokens":256,"stream":true,"messages":[{"role":"user","content":"Hello"}]}'

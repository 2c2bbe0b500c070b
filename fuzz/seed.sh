#!/usr/bin/env bash
# Seeds the fuzz corpora from the golden fixtures (the corpus folders are not committed).
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p corpus/openai_request corpus/bedrock_response corpus/model_id_path
for case in ../tests/fixtures/*/; do
    name="$(basename "$case")"
    [ -f "$case/openai_request.json" ] && cp "$case/openai_request.json" "corpus/openai_request/$name"
    [ -f "$case/bedrock_response.json" ] && cp "$case/bedrock_response.json" "corpus/bedrock_response/$name"
    if [ -f "$case/case.yaml" ]; then
        sed -n 's/^bedrock_model_id: //p' "$case/case.yaml" | tr -d '\n' > "corpus/model_id_path/$name"
    fi
done
printf 'arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0' \
    > corpus/model_id_path/arn
echo "seeded: $(find corpus -type f | wc -l) files"

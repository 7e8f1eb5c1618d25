#!/usr/bin/env bash
# Stream a chat completion from the OpenAI-compatible frontend (`triton-llm frontend`, or `serve`'s
# --openai-port, default 9000) with curl, as Server-Sent Events.
#   clients/openai_chat_stream.sh [BASE_URL] [MODEL] [PROMPT] [MAX_TOKENS]
# Prints the raw events: "data: {chunk}" lines whose choices[0].delta.content pieces concatenate to
# the answer, a last chunk with "usage" (stream_options.include_usage), then "data: [DONE]".
# An error (unknown model, bad parameter, Triton down) prints OpenAI's error JSON and exits 22.
set -euo pipefail
BASE_URL="${1:-http://127.0.0.1:9000/v1}"
MODEL="${2:-smollm2-135m}"
PROMPT="${3:-What is the capital of France?}"
MAX_TOKENS="${4:-64}"
BODY=$(python3 -c 'import json, sys; print(json.dumps({"model": sys.argv[1], "messages": [{"role": "user", "content": sys.argv[2]}], "max_tokens": int(sys.argv[3]), "stream": True, "stream_options": {"include_usage": True}}))' "$MODEL" "$PROMPT" "$MAX_TOKENS")
curl --silent --show-error --fail-with-body --no-buffer \
  -X POST "${BASE_URL}/chat/completions" \
  -H 'Content-Type: application/json' \
  -d "$BODY"

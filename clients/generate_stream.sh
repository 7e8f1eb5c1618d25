#!/usr/bin/env bash
# Stream a completion over HTTP (Server-Sent Events) from Triton's generate extension.
#   clients/generate_stream.sh [HOST:PORT] [PROMPT] [MAX_TOKENS]
# Each "data:" line is one JSON response; concatenating their text_output gives the full text,
# exactly (spaces, emoji, CJK), with or without an "id". Closing the connection (Ctrl-C)
# cancels the request. The unique "id" lets the GPU backend stop it through the ensemble.
set -euo pipefail
URL="${1:-127.0.0.1:8000}"
PROMPT="${2:-What is the capital of France?}"
MAX_TOKENS="${3:-32}"
ID="curl-$$-$(date +%s%N)"
BODY=$(python3 -c 'import json,sys; print(json.dumps({"id": sys.argv[1], "text_input": sys.argv[2], "max_tokens": int(sys.argv[3]), "stream": True}))' "$ID" "$PROMPT" "$MAX_TOKENS")
curl --silent --show-error --fail-with-body --no-buffer \
  -X POST "http://${URL}/v2/models/ensemble/generate_stream" \
  -H 'Content-Type: application/json' \
  -d "$BODY"

"""An OpenAI-compatible replay server: a stand-in for the LLM provider.

It answers ``POST /v1/chat/completions`` (plain and streamed) from recorded
exchanges, *cassettes*, with their recorded content, token usage and latency
(scaled by ``REPLAY_LATENCY_SCALE``; 0 for CLI-only benchmarks). A prompt no
cassette matches gets a well-formed "nothing found" completion. In record mode
it forwards to a real OpenAI-compatible endpoint and writes new cassettes.

    gunicorn -k gthread otel_run.demo.replay.wsgi:application     # or
    python -m otel_run.demo.replay --port 8100 --cassettes DIR
"""

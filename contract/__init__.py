"""What every role must agree on, kept once below them all: it imports no logrl package, only the standard library.

- `completion_format`: the `<think>/<answer>` completion, rendered and parsed.
- `chat_tokens`: the last step from chat messages to token ids, fast mode's `<answer>` prefill included.
- `adapter_store`: adapter identity on disk: `v<N>` folders, int versions, LoRA ids, the latest pointer.
- `log_formats`: the names of the log formats a run's data may come in.
- `actor_env`: how work is cut across workers and which settings follow every actor process.
"""

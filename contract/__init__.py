"""What every role must agree on, kept once below them all: it imports no logrl package, only the standard library.

- `completion_format`: the `<think>/<answer>` completion, rendered and parsed.
- `chat_tokens`: the last step from chat messages to token ids, fast mode's `<answer>` prefill included.
- `adapter_store`: adapter identity on disk: `v<N>` folders, int versions, LoRA ids, the latest pointer.
- `log_formats`: the names of the log formats a run's data may come in.
- `sharding`: how a batch is cut into even, contiguous shards across workers, ranks and steps.
- `actor_env`: which of the driver's settings follow every actor and Serve replica.
- `evidence`: the citation rule (`L<n> "quote"` checked against the prompt) of the grounding reward and of eval.
- `evidence_grammar`: the same rule as a decoding grammar (grounded mode in eval and /detect).
"""

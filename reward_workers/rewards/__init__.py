"""Built-in rewards, one module each; importing this package registers them."""

from reward_workers.rewards import answer_reward, brevity_reward, format_reward, grounding_reward, perplexity_reward

__all__ = ["answer_reward", "brevity_reward", "format_reward", "grounding_reward", "perplexity_reward"]

"""Reward scoring for GRPO: pure reward functions in a registry, a scorer, and a thin Ray shell."""

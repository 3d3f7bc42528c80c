"""Offline evaluation of a trained detector: greedy inference, metrics, faithfulness, baselines, report."""

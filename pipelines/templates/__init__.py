"""drain3 templates: the miner training and serving share, and its masking rules."""

"""prepare-data with Ray Data: the streaming builds (line windows, blocks, time windows) and the data report."""

"""The work queue's vocabulary: its messages, and what the sweep has in flight."""

"""The background work: the sweep's timer and the work queue's messages, done."""

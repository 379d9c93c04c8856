"""The edges: HTTP for copies and jobs, the other triggers, and the composition root."""

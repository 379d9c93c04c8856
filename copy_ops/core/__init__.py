"""The pure core: copy-ops' shared vocabulary and rules, no I/O, no clock."""

"""``copy-ops``: the operator's command line, a client of copy-ops' HTTP API.

Not part of the function app (``.funcignore`` leaves it out) and not importing it: it
speaks only HTTP, as any other caller does, with the standard library alone.
"""

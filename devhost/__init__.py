"""A small development host for the copy-ops function app, for machines without Azure
Functions Core Tools. A development tool only: not deployed (see .funcignore), not a
production server. ``func start`` remains the normal local host where it is installed.
"""

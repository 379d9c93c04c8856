"""copy-ops: deadline-guarded Azure Blob copies.

The package is the product; ``function_app.py`` only wires it to Azure Functions.
"""

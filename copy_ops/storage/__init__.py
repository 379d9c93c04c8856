"""The adapter between copy-ops and Azure Storage.

The only code that imports the Azure SDK (``azure.storage``, ``azure.core``,
``azure.identity``): it speaks copy-ops' own vocabulary (:mod:`copy_ops.copies.model`,
:mod:`copy_ops.core.errors`) outwards and Azure's inwards, and translates every SDK
exception once (:mod:`copy_ops.storage.errors`). A test keeps that wall.

* :mod:`~copy_ops.storage.blobs`: :class:`BlobStorage`, both sides of :mod:`copy_ops.copies.ports`;
* :mod:`~copy_ops.storage.client`: building the SDK client (transport, retries, credential);
* :mod:`~copy_ops.storage.errors`: SDK exceptions and Azure's error codes, translated.
"""

from copy_ops.storage.blobs import BlobStorage

__all__ = ["BlobStorage"]

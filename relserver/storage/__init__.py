"""The two storage seams (DESIGN D8): the blob store (bytes, `storage.blobs`) and the catalog
(metadata). Nothing here knows HTTP or Sentry's wire format.

The blob store is an interface with its disk engine (`storage.blobs`). The catalog's SQLite
engine is `storage.sqlite`, one `Store` class until it is split into units of work carrying
per-aggregate repositories; every SQL statement relserver runs is there.
"""

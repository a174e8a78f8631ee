"""The two storage seams (DESIGN D8): the blob store (bytes, `storage.blobs`) and the catalog
(metadata). Nothing here knows HTTP or Sentry's wire format.

The blob store is an interface with its disk engine; the catalog's SQLite engine is
`relserver/store.py` until it is split into units of work and repositories.
"""

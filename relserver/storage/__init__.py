"""The two storage seams (DESIGN D8). Nothing here knows HTTP or Sentry's wire format.

- `storage.catalog`: metadata as units of work (read and write transactions carrying one
  repository per aggregate); the SQLite engine is `storage.sql.sqlite`, and every SQL statement
  relserver runs is in `storage.sql`.
- `storage.blobs`: bytes by sha1, with no paths in the interface; the disk engine is
  `storage.blobs.disk`.
"""

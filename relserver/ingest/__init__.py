"""Bytes arriving: multipart bodies, chunk parts and bundle zips, streamed and bounded.

The only aiohttp code below `api/` lives here (in `multipart`, `release_file`, `chunks`);
nothing here knows SQL or routes.
"""

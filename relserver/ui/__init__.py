"""The web UI under /ui/ (DESIGN D11): server-rendered pages over the same services as the API.

`ui.app.setup_ui` mounts it; templates and static assets ship inside this package.
"""

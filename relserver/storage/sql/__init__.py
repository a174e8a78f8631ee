"""The catalog's SQL engines: repositories written once (`repos`), a dialect per engine."""

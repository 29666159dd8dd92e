"""One configuration layer: a table of settings (:mod:`.table`), one parser per value type (:mod:`.parsers`),
one precedence rule (:mod:`.resolve`: CLI flag > environment > ini > canary.toml > default), the ``canary``
commands' flags derived from the table (:mod:`.cli`) and the reference in docs/configuration.md
(:mod:`.reference`).
"""

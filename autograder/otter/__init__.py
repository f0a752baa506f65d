"""Coming from otter-grader: ``dlgrade import-otter`` reads an otter master notebook (``parse``),
converts it (``convert``) and writes an assignment folder with its report (``report``); the
generated tests run with ``runtime``."""

"""Exit codes of ``lae-bench``, the same in every verb (docs/reliability.md). Standard library
only: the entry guard imports this before anything slow."""

EXIT_OK = 0
EXIT_RUN_FAILED = 1              # run: a run errored; compare: a regression. Nothing else
EXIT_USAGE = 2                   # bad input or environment, named in one line
EXIT_NOTHING_COMPARABLE = 3      # compare: no cell in common
EXIT_INTERNAL = 70               # EX_SOFTWARE (sysexits.h): a bug of ours, to be reported
EXIT_INTERRUPTED = 130           # 128 + SIGINT, as shells say
EXIT_TERMINATED = 143            # 128 + SIGTERM

"""The `tt-specdec bench` harness: side-by-side wall clock on a prompt set."""

"""What the kernel benchmarks share: timing an emulator run and writing rows as JSON."""
import json
import statistics
import time


def emu_run_ms(run, repeat: int):
    """(result of the first run, median wall ms of `repeat` more): the first run compiles on a cold kernel cache."""
    result = run()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return result, round(1e3 * statistics.median(times), 2)


def write_rows(rows: list, path: str | None) -> None:
    if path:
        with open(path, "w") as f:
            json.dump(rows, f, indent=1)

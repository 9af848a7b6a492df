"""Progress that reads well where it goes: tqdm's redrawn bar on a terminal, and one plain line per step
when stderr is a file or a pipe (CI logs, ``make demo > log``), where ``\\r`` redraws turn into noise."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sized
from typing import Any, Generic, TypeVar

from tqdm import tqdm

T = TypeVar("T")


class LineProgress(Generic[T]):
    """The part of tqdm's interface Nexus uses, writing ``desc: 2/5 step`` lines to stderr."""

    def __init__(self, iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str = "",
                 unit: str = "it") -> None:
        self.iterable, self.desc, self.unit, self.n, self.postfix = iterable, desc, unit, 0, ""
        self.total = total if total is not None else len(iterable) if isinstance(iterable, Sized) else None

    def __iter__(self) -> Iterator[T]:
        for item in self.iterable or ():
            yield item
            self.update(1)

    def __enter__(self) -> LineProgress[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
        self.postfix = text

    def update(self, n: int = 1) -> None:
        self.n += n
        of = f"/{self.total}" if self.total is not None else ""
        line = f"{self.desc}: {self.n}{of} {self.unit}" + (f" ({self.postfix})" if self.postfix else "")
        print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


def progress(iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str = "",
             unit: str = "it", disable: bool = False, leave: bool = True) -> Any:
    """A tqdm bar on a terminal, else a ``LineProgress``; nothing at all when ``disable``."""
    if not disable and not sys.stderr.isatty():
        return LineProgress(iterable, total=total, desc=desc, unit=unit)
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=disable, leave=leave)

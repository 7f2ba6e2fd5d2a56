"""Helpers of the claim tests: the benchmarks' modules, and torch's allocations counted.

The claims of ``benchmarks/`` are measured there in time and resident memory at large sizes;
here they are checked at small sizes on quantities that do not depend on the machine or its
load: the bytes of the tensors torch holds alive, the largest single tensor, and the elements
every operation writes (a count of work).
"""

from __future__ import annotations

import importlib
import math
import sys
import weakref
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@dataclass
class Allocations:
    """What one call allocated: the peak of live tensor bytes above the start, the largest
    tensor (elements) and the elements written by all operations together."""

    peak_bytes: int
    largest: int
    elements: int


class _Tracker(TorchDispatchMode):
    # Every tensor an operation returns is followed to its storage; a storage counts as live
    # from the first tensor on it until the last of those tensors is freed (tensors autograd
    # saves for the backward pass stay alive with it). Views and in-place results share their
    # input's storage and add no bytes.
    def __init__(self) -> None:
        super().__init__()
        self.refs: dict[int, list[int]] = {}
        self.live = self.peak = self.largest = self.elements = 0

    def _release(self, ptr: int) -> None:
        entry = self.refs[ptr]
        entry[0] -= 1
        if entry[0] == 0:
            self.live -= entry[1]
            del self.refs[ptr]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor):
                continue
            self.largest = max(self.largest, t.numel())
            self.elements += t.numel()
            storage = t.untyped_storage()
            ptr = storage.data_ptr()
            if ptr == 0:
                continue
            entry = self.refs.get(ptr)
            if entry is None:
                entry = self.refs[ptr] = [0, storage.nbytes()]
                self.live += entry[1]
                self.peak = max(self.peak, self.live)
            entry[0] += 1
            weakref.finalize(t, self._release, ptr)
        return out


def count_allocations(fn) -> Allocations:
    """Run ``fn()`` and count torch's allocations during it (see :class:`Allocations`)."""
    tracker = _Tracker()
    with tracker:
        fn()
    return Allocations(tracker.peak, tracker.largest, tracker.elements)


def slope(n1: float, y1: float, n2: float, y2: float) -> float:
    """Growth exponent p of y ~ n^p between two points."""
    return math.log(y2 / y1) / math.log(n2 / n1)


@pytest.fixture(scope="session")
def benchmark_module():
    """``benchmark_module("name")``: ``benchmarks/name.py``, imported as the scripts import
    each other (their folder on ``sys.path``)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    return importlib.import_module


@pytest.fixture
def allocations():
    return count_allocations


@pytest.fixture
def growth():
    return slope


@pytest.fixture(autouse=True)
def _one_thread():
    # the counts do not depend on threads; one keeps the runs cheap on a shared machine
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

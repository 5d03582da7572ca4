"""Slow, obviously correct references for ispad_core.io kernels (written from RFC 1950/1951)."""

from __future__ import annotations

import heapq
import itertools


def huffman_cost(freq: list[int]) -> int:
    """Total coded bits of an optimal (unlimited) Huffman code for ``freq`` (heap merging)."""
    weights = [f for f in freq if f > 0]
    if len(weights) < 2:
        return sum(weights)  # one symbol: one bit each
    heap = list(weights)
    heapq.heapify(heap)
    cost = 0
    while len(heap) > 1:
        a, b = heapq.heappop(heap), heapq.heappop(heap)
        cost += a + b  # every merge adds one bit to each symbol below it
        heapq.heappush(heap, a + b)
    return cost


def kraft_complete(lengths: list[int]) -> bool:
    """Whether nonzero code lengths satisfy Kraft's equality (a complete prefix code)."""
    from fractions import Fraction

    return sum(Fraction(1, 2**L) for L in lengths if L) == 1


def canonical_codes(lengths: list[int]) -> list[str]:
    """RFC 1951 3.2.2 canonical codes as bit strings (MSB first), '' for unused symbols."""
    codes = [""] * len(lengths)
    code = 0
    for length in range(1, max(lengths) + 1):
        for sym, L in enumerate(lengths):
            if L == length:
                codes[sym] = format(code, f"0{length}b")
                code += 1
        code <<= 1
    return codes


def adler32(data: bytes) -> int:
    """Adler-32 straight from RFC 1950."""
    a, b = 1, 0
    for byte in data:
        a = (a + byte) % 65521
        b = (b + a) % 65521
    return (b << 16) | a


def is_prefix_free(codes: list[str]) -> bool:
    used = [c for c in codes if c]
    return not any(x != y and y.startswith(x) for x, y in itertools.product(used, used))

"""SipHash-2-4, as the Linux kernel's ``siphash()`` computes it, vectorized over numpy.

Two implementations of the same function:

* :func:`siphash24` -- plain Python over ``bytes``; the reference the tests trust.
* the numpy path -- :func:`sip_init`, :func:`sip_compress`, :func:`sip_finalize` (or
  :func:`siphash24_words` for all three) -- hashes many messages at once. A message is
  given as its little-endian 64-bit words, one uint64 array (or a plain int, when every
  message has the same word there) per position. The state can be carried between
  calls, so a caller can hash a prefix common to many flows once and reuse it.

All arithmetic is modulo 2**64 on uint64 arrays; operations write into preallocated
buffers to keep the inner loop free of allocations (this is what makes it fast).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import numpy as np

MASK64 = (1 << 64) - 1
_INIT = (0x736F6D6570736575, 0x646F72616E646F6D, 0x6C7967656E657261, 0x7465646279746573)


# ---------------------------------------------------------------- scalar reference


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & MASK64


def _round(v0: int, v1: int, v2: int, v3: int) -> tuple[int, int, int, int]:
    v0 = (v0 + v1) & MASK64
    v1 = _rotl(v1, 13) ^ v0
    v0 = _rotl(v0, 32)
    v2 = (v2 + v3) & MASK64
    v3 = _rotl(v3, 16) ^ v2
    v0 = (v0 + v3) & MASK64
    v3 = _rotl(v3, 21) ^ v0
    v2 = (v2 + v1) & MASK64
    v1 = _rotl(v1, 17) ^ v2
    v2 = _rotl(v2, 32)
    return v0, v1, v2, v3


def siphash24(key: bytes, data: bytes) -> int:
    """SipHash-2-4 of ``data`` under a 16-byte ``key``; returns the 64-bit value."""
    if len(key) != 16:
        raise ValueError("SipHash key must be 16 bytes")
    k0 = int.from_bytes(key[:8], "little")
    k1 = int.from_bytes(key[8:], "little")
    v0, v1, v2, v3 = _INIT[0] ^ k0, _INIT[1] ^ k1, _INIT[2] ^ k0, _INIT[3] ^ k1
    full = len(data) - len(data) % 8
    for off in range(0, full, 8):
        m = int.from_bytes(data[off : off + 8], "little")
        v3 ^= m
        v0, v1, v2, v3 = _round(*_round(v0, v1, v2, v3))
        v0 ^= m
    b = ((len(data) & 0xFF) << 56) | int.from_bytes(data[full:], "little")
    v3 ^= b
    v0, v1, v2, v3 = _round(*_round(v0, v1, v2, v3))
    v0 ^= b
    v2 ^= 0xFF
    for _ in range(4):
        v0, v1, v2, v3 = _round(v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3


# ---------------------------------------------------------------- vectorized

Word: TypeAlias = "np.ndarray | int"


class SipState:
    """The four SipHash lanes for n messages, plus scratch space for the rounds."""

    __slots__ = ("v0", "v1", "v2", "v3", "_t")

    def __init__(self, v0: np.ndarray, v1: np.ndarray, v2: np.ndarray, v3: np.ndarray):
        self.v0, self.v1, self.v2, self.v3 = v0, v1, v2, v3
        self._t = np.empty_like(v0)

    def copy(self) -> SipState:
        return SipState(self.v0.copy(), self.v1.copy(), self.v2.copy(), self.v3.copy())

    def take(self, index: np.ndarray) -> SipState:
        """The states of messages ``index`` (a gather; used to reuse hashed prefixes)."""
        return SipState(self.v0[index], self.v1[index], self.v2[index], self.v3[index])


def sip_init(key0: int, key1: int, n: int) -> SipState:
    """Fresh state for ``n`` messages under the key (key0, key1) as two 64-bit words."""

    def lane(c: int, k: int) -> np.ndarray:
        return np.full(n, (c ^ k) & MASK64, dtype=np.uint64)

    return SipState(
        lane(_INIT[0], key0), lane(_INIT[1], key1), lane(_INIT[2], key0), lane(_INIT[3], key1)
    )


def _rotl_inplace(x: np.ndarray, b: int, t: np.ndarray) -> None:
    np.left_shift(x, np.uint64(b), out=t)
    np.right_shift(x, np.uint64(64 - b), out=x)
    np.bitwise_or(x, t, out=x)


def _sipround(s: SipState) -> None:
    v0, v1, v2, v3, t = s.v0, s.v1, s.v2, s.v3, s._t
    np.add(v0, v1, out=v0)
    _rotl_inplace(v1, 13, t)
    np.bitwise_xor(v1, v0, out=v1)
    _rotl_inplace(v0, 32, t)
    np.add(v2, v3, out=v2)
    _rotl_inplace(v3, 16, t)
    np.bitwise_xor(v3, v2, out=v3)
    np.add(v0, v3, out=v0)
    _rotl_inplace(v3, 21, t)
    np.bitwise_xor(v3, v0, out=v3)
    np.add(v2, v1, out=v2)
    _rotl_inplace(v1, 17, t)
    np.bitwise_xor(v1, v2, out=v1)
    _rotl_inplace(v2, 32, t)


def _xor_word(lane: np.ndarray, word: Word) -> None:
    # A zero word (common: zeroed struct padding) changes nothing; skip the pass.
    if isinstance(word, (int, np.integer)):
        if int(word) == 0:
            return
        np.bitwise_xor(lane, np.uint64(int(word) & MASK64), out=lane)
    else:
        np.bitwise_xor(lane, word, out=lane)


def sip_compress(s: SipState, words: Sequence[Word]) -> SipState:
    """Absorb full 8-byte little-endian words (two rounds each); updates ``s`` in place."""
    for m in words:
        _xor_word(s.v3, m)
        _sipround(s)
        _sipround(s)
        _xor_word(s.v0, m)
    return s


def sip_finalize(s: SipState, length: int, tail: Word = 0) -> np.ndarray:
    """Finish messages of ``length`` bytes; ``tail`` holds the last ``length % 8`` bytes.

    Consumes ``s``; returns the 64-bit hashes as a uint64 array.
    """
    if isinstance(tail, (int, np.integer)):
        b: Word = ((length & 0xFF) << 56) | int(tail)
    else:
        b = np.bitwise_or(tail.astype(np.uint64), np.uint64((length & 0xFF) << 56))
    _xor_word(s.v3, b)
    _sipround(s)
    _sipround(s)
    _xor_word(s.v0, b)
    np.bitwise_xor(s.v2, np.uint64(0xFF), out=s.v2)
    for _ in range(4):
        _sipround(s)
    out = s.v0
    np.bitwise_xor(out, s.v1, out=out)
    np.bitwise_xor(out, s.v2, out=out)
    np.bitwise_xor(out, s.v3, out=out)
    return out


def siphash24_words(key0: int, key1: int, words: Sequence[Word], length: int, n: int) -> np.ndarray:
    """SipHash-2-4 of ``n`` messages of ``length`` bytes given as LE 64-bit words.

    ``words`` has ``length // 8`` full words, then one more holding the remaining
    ``length % 8`` bytes when there are any.
    """
    full = length // 8
    expected = full + (1 if length % 8 else 0)
    if len(words) != expected:
        raise ValueError(f"{length} bytes need {expected} words, got {len(words)}")
    s = sip_compress(sip_init(key0, key1, n), words[:full])
    return sip_finalize(s, length, words[full] if length % 8 else 0)

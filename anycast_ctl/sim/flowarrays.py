"""Flows as columns of numpy arrays: the input of every vectorized algorithm.

Addresses are integers in host order (``int(ipaddress.ip_address(s))``):

* IPv4 (``family == 4``): ``src`` and ``dst`` are uint32 arrays of shape (n,).
* IPv6 (``family == 6``): ``src`` and ``dst`` are uint64 arrays of shape (n, 2);
  column 0 holds the high 64 bits (the first 8 bytes on the wire), column 1 the low 64.

``proto`` is uint8, ``sport`` and ``dport`` uint16. One FlowArrays holds one family;
mixed inputs are split by the caller (see :func:`FlowArrays.from_tuples`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

_MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class FlowArrays:
    src: np.ndarray
    dst: np.ndarray
    proto: np.ndarray
    sport: np.ndarray
    dport: np.ndarray
    family: int = 4

    def __post_init__(self) -> None:
        if self.family not in (4, 6):
            raise ValueError(f"family must be 4 or 6, not {self.family!r}")
        addr_dtype, addr_shape = (np.uint32, ()) if self.family == 4 else (np.uint64, (2,))
        coerce = {
            "src": addr_dtype,
            "dst": addr_dtype,
            "proto": np.uint8,
            "sport": np.uint16,
            "dport": np.uint16,
        }
        for name, dtype in coerce.items():
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=dtype))
        n = self.proto.shape[0] if self.proto.ndim == 1 else -1
        for name in ("proto", "sport", "dport"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"{name} must be a 1-d array of {n} flows")
        for name in ("src", "dst"):
            if getattr(self, name).shape != (n, *addr_shape):
                raise ValueError(f"{name} must have shape {(n, *addr_shape)} for IPv{self.family}")

    def __len__(self) -> int:
        return int(self.proto.shape[0])

    def chunk(self, start: int, stop: int) -> FlowArrays:
        """Flows ``start:stop`` (views, no copy)."""
        return FlowArrays(
            self.src[start:stop],
            self.dst[start:stop],
            self.proto[start:stop],
            self.sport[start:stop],
            self.dport[start:stop],
            self.family,
        )

    def chunks(self, size: int) -> Iterable[FlowArrays]:
        for start in range(0, len(self), size):
            yield self.chunk(start, start + size)

    @classmethod
    def from_tuples(cls, rows: Iterable[tuple[str, str, int, int, int]]) -> FlowArrays:
        """Build from ``(src, dst, proto, sport, dport)`` rows of one address family.

        Raises ValueError naming the row (0-based) for a bad address, a family mix,
        or a number out of range.
        """
        rows = list(rows)
        srcs: list[int] = []
        dsts: list[int] = []
        nums: list[tuple[int, int, int]] = []
        family = None
        for i, (src, dst, proto, sport, dport) in enumerate(rows):
            try:
                s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
            except ValueError as exc:
                raise ValueError(f"row {i}: {exc}") from None
            if s.version != d.version:
                raise ValueError(f"row {i}: src is IPv{s.version} but dst is IPv{d.version}")
            if family is None:
                family = s.version
            elif s.version != family:
                raise ValueError(f"row {i}: IPv{s.version} flow among IPv{family} flows")
            for name, value, top in (
                ("proto", proto, 255),
                ("sport", sport, 65535),
                ("dport", dport, 65535),
            ):
                if not 0 <= int(value) <= top:
                    raise ValueError(f"row {i}: {name} {value} is outside 0..{top}")
            srcs.append(int(s))
            dsts.append(int(d))
            nums.append((int(proto), int(sport), int(dport)))
        family = family or 4
        numbers = np.array(nums, dtype=np.int64).reshape(-1, 3)
        return cls(
            src=_pack(srcs, family),
            dst=_pack(dsts, family),
            proto=numbers[:, 0],
            sport=numbers[:, 1],
            dport=numbers[:, 2],
            family=family,
        )

    def address_strings(self, which: str) -> list[str]:
        """``src`` or ``dst`` as text, for reports and for driving ``ip route get``."""
        column = getattr(self, which)
        if self.family == 4:
            return [str(ipaddress.IPv4Address(int(a))) for a in column]
        return [str(ipaddress.IPv6Address((int(hi) << 64) | int(lo))) for hi, lo in column]


def _pack(addresses: list[int], family: int) -> np.ndarray:
    if family == 4:
        return np.array(addresses, dtype=np.uint32)
    out = np.empty((len(addresses), 2), dtype=np.uint64)
    for i, a in enumerate(addresses):
        out[i, 0] = a >> 64
        out[i, 1] = a & _MASK64
    return out

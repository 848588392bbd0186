"""The counter-based random generator every backend shares (docs/rng.md).

A draw is a pure function of (seed, block, ordinal, time, element):

    counter = (element, time mod 2**32, ordinal, crc32(block label))
    key     = (seed mod 2**32, seed >> 32)
    r0, r1, r2, r3 = Philox4x32-10(counter, key)

    uniform() = (r0 >> 8) * 2**-24                      exactly, in [0, 1)
    gauss()   = sqrt(-2 ln u1) * cos(2 pi u2)           Box-Muller, rounded to float32
                with u1 = ((r0 >> 8) + 1) * 2**-24 in (0, 1], u2 = (r1 >> 8) * 2**-24

`element` is the node id for a float draw and the half-edge index for a
vector draw. Philox4x32-10 is Salmon et al., "Parallel random numbers: as
easy as 1, 2, 3" (SC'11); tests check the Random123 known answers.
"""

from __future__ import annotations

import zlib

import numpy as np

from .errors import RulecTypeError, RulecValueError


def block_key(label: str) -> int:
    """The 32-bit key of a block in the random counter: CRC-32 of its label."""
    return zlib.crc32(label.encode("utf-8")) & 0xFFFFFFFF


_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = 0x9E3779B9
_W1 = 0xBB67AE85
_MASK = np.uint64(0xFFFFFFFF)
_SHIFT = np.uint64(32)
ROUNDS = 10

_2_POW_M24 = 1.0 / (1 << 24)


def philox4x32(counter, key: tuple[int, int], rounds: int = ROUNDS):
    """Philox4x32 on arrays: `counter` is four uint32-valued arrays (or ints)
    broadcast together, `key` two ints. Returns four uint64 arrays of 32-bit words."""
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) & _MASK for c in counter)
    c0, c1, c2, c3 = np.broadcast_arrays(c0, c1, c2, c3)
    k0, k1 = int(key[0]) & 0xFFFFFFFF, int(key[1]) & 0xFFFFFFFF
    for round_index in range(rounds):
        if round_index:
            k0 = (k0 + _W0) & 0xFFFFFFFF
            k1 = (k1 + _W1) & 0xFFFFFFFF
        p0 = _M0 * c0
        p1 = _M1 * c2
        c0, c1, c2, c3 = (
            (p1 >> _SHIFT) ^ c1 ^ np.uint64(k0),
            p1 & _MASK,
            (p0 >> _SHIFT) ^ c3 ^ np.uint64(k1),
            p0 & _MASK,
        )
    return c0, c1, c2, c3


def check_seed(seed: int) -> int:
    """Seeds are integers in [0, 2**64)."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise RulecTypeError(f"seed must be an integer, got {type(seed).__name__}")
    seed = int(seed)
    if not 0 <= seed < 2**64:
        raise RulecValueError(f"seed must be in [0, 2**64), got {seed}")
    return seed


def raw(n: int, seed: int, block_key: int, ordinal: int, time: int):
    """The Philox words r0, r1 for elements 0..n-1 of one draw."""
    element = np.arange(n, dtype=np.uint64)
    r0, r1, _, _ = philox4x32(
        (element, time & 0xFFFFFFFF, ordinal, block_key), (seed & 0xFFFFFFFF, seed >> 32)
    )
    return r0, r1


def uniform(n: int, seed: int, block_key: int, ordinal: int, time: int) -> np.ndarray:
    """n uniform float32 draws in [0, 1), bit-exact across backends."""
    r0, _ = raw(n, seed, block_key, ordinal, time)
    return ((r0 >> np.uint64(8)).astype(np.float64) * _2_POW_M24).astype(np.float32)


def gauss(n: int, seed: int, block_key: int, ordinal: int, time: int) -> np.ndarray:
    """n standard normal float32 draws (Box-Muller on r0, r1)."""
    r0, r1 = raw(n, seed, block_key, ordinal, time)
    u1 = ((r0 >> np.uint64(8)).astype(np.float64) + 1.0) * _2_POW_M24
    u2 = (r1 >> np.uint64(8)).astype(np.float64) * _2_POW_M24
    return (np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)).astype(np.float32)


DRAW = {"uniform": uniform, "gauss": gauss}

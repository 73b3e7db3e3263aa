"""SipHash-2-4: the reference vectors from the SipHash paper, scalar and vectorized."""

import numpy as np
import pytest

from anycast_ctl.sim.siphash import sip_compress, sip_finalize, sip_init, siphash24, siphash24_words

KEY = bytes(range(16))
K0, K1 = int.from_bytes(KEY[:8], "little"), int.from_bytes(KEY[8:], "little")
# vectors_sip64 of the reference implementation: key 00..0f, message 00 01 .. (len-1).
PAPER_VECTORS = [
    0x726FDB47DD0E0E31,
    0x74F839C593DC67FD,
    0x0D6C8009D9A94F5A,
    0x85676696D7FB7E2D,
    0xCF2794E0277187B7,
    0x18765564CD99A68D,
    0xCBC9466E58FEE3CE,
    0xAB0200F58B01D137,
    0x93F5F5799A932462,
    0x9E0082DF0BA9E4B0,
    0x7A5DBBC594DDB9F3,
    0xF4B32F46226BADA7,
    0x751E8FBC860EE5FB,
    0x14EA5627C0843D90,
    0xF723CA908E7AF2EE,
    0xA129CA6149BE45E5,
]


def le_words(data: bytes) -> list[int]:
    return [int.from_bytes(data[i : i + 8], "little") for i in range(0, len(data), 8)]


@pytest.mark.parametrize("length", range(len(PAPER_VECTORS)))
def test_scalar_matches_paper_vector(length):
    assert siphash24(KEY, bytes(range(length))) == PAPER_VECTORS[length]


@pytest.mark.parametrize("length", range(len(PAPER_VECTORS)))
def test_vectorized_matches_paper_vector(length):
    words = [np.array([w, w], dtype=np.uint64) for w in le_words(bytes(range(length)))]
    got = siphash24_words(K0, K1, words, length, n=2)
    assert got.tolist() == [PAPER_VECTORS[length]] * 2


def test_vectorized_agrees_with_scalar_on_random_messages():
    rng = np.random.default_rng(3)
    for length in (8, 48, 72, 13):
        messages = [rng.bytes(length) for _ in range(200)]
        columns = list(zip(*(le_words(m) for m in messages), strict=True))
        words = [np.array(c, dtype=np.uint64) for c in columns]
        key = rng.bytes(16)
        k0, k1 = int.from_bytes(key[:8], "little"), int.from_bytes(key[8:], "little")
        got = siphash24_words(k0, k1, words, length, n=len(messages))
        assert got.tolist() == [siphash24(key, m) for m in messages]


def test_scalar_words_broadcast_like_arrays():
    # A word the same for every message may be given as a plain int (zeroed padding).
    data = bytes(8) + bytes(range(8))
    as_arrays = siphash24_words(
        K0, K1, [np.zeros(3, np.uint64), np.full(3, le_words(data)[1], np.uint64)], 16, 3
    )
    as_ints = siphash24_words(K0, K1, [0, np.full(3, le_words(data)[1], np.uint64)], 16, 3)
    assert as_arrays.tolist() == as_ints.tolist() == [siphash24(KEY, data)] * 3


def test_state_can_be_split_into_prefix_and_rest():
    data = bytes(range(48))
    words = [np.full(4, w, np.uint64) for w in le_words(data)]
    prefix = sip_compress(sip_init(K0, K1, 4), words[:3])
    rest = sip_compress(prefix.take(np.array([0, 1, 2, 3])), words[3:])
    assert sip_finalize(rest, 48).tolist() == [siphash24(KEY, data)] * 4


def test_word_count_must_fit_length():
    with pytest.raises(ValueError):
        siphash24_words(K0, K1, [0], 16, 1)

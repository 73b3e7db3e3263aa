"""nftables in this process (libnftables through ctypes), for the table the agent replaces
when a peer changes state: starting `nft` costs 25-160 ms on a loaded machine, the library
call a few ms, and a peer's table has to follow before the routers move flows (about
70-140 ms after the withdraw line).

    if available():
        run(text)        # the same text `nft -f -` reads; raises NftLibError with nft's words

Only for the network namespace this process is in (the agent's); apply.py falls back to the
`nft` command for another namespace or when the library cannot be loaded.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading

NFT_CTX_DEFAULT = 0
NFT_CTX_OUTPUT_JSON = 1 << 4  # libnftables.h: enum nft_output_flags
_lib: ctypes.CDLL | None = None
_tried = False
_guard = threading.Lock()  # one load; one context in use at a time


class NftLibError(RuntimeError):
    pass


def _load() -> ctypes.CDLL | None:
    global _lib, _tried
    with _guard:
        if not _tried:
            _tried = True
            name = ctypes.util.find_library("nftables") or "libnftables.so.1"
            try:
                lib = ctypes.CDLL(name)
            except OSError:
                return None
            lib.nft_ctx_new.restype = ctypes.c_void_p
            lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
            lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
            lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
            lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
            lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
            lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
            lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
            _lib = lib
        return _lib


def available() -> bool:
    return _load() is not None


def run(text: str) -> None:
    """Apply `text` as one nft transaction in this process's network namespace."""
    _command(text, 0)


def list_json(command: str) -> str:
    """What `nft -j COMMAND` prints, read in this process's network namespace."""
    return _command(command, NFT_CTX_OUTPUT_JSON)


def _command(text: str, output_flags: int) -> str:
    lib = _load()
    if lib is None:
        raise NftLibError("libnftables cannot be loaded (apt-get install libnftables1)")
    with _guard:
        ctx = lib.nft_ctx_new(NFT_CTX_DEFAULT)
        if not ctx:
            raise NftLibError("nft_ctx_new failed")
        try:
            lib.nft_ctx_output_set_flags(ctx, output_flags)
            lib.nft_ctx_buffer_output(ctx)  # into a buffer, never on our stdout
            lib.nft_ctx_buffer_error(ctx)
            if lib.nft_run_cmd_from_buffer(ctx, text.encode()) != 0:
                words = (lib.nft_ctx_get_error_buffer(ctx) or b"").decode(errors="replace")
                raise NftLibError(words.strip() or "nft_run_cmd_from_buffer failed")
            return (lib.nft_ctx_get_output_buffer(ctx) or b"").decode(errors="replace")
        finally:
            lib.nft_ctx_free(ctx)

"""The byte form of the protocol's messages, for carrying them between processes and nodes.

A domain's part runs in a sandbox, so its messages leave the sandbox as bytes and enter the next
party's sandbox as bytes. The form is JSON (tokens, shares and sums as base64, ciphertexts and
masked sums as decimal strings, group keys as JSON values with dates tagged): data only, never
pickle, so a compromised sandbox can send nothing but a message that is parsed and type-checked
here. Anything else is a :class:`CrossDomainProtocolError`.

>>> from executors.crossdomain.plan import Side
>>> message = ReblindedBatches(Side.LEFT, ((b"\\x02" * 33,),))
>>> decode(encode(message)) == message
True
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from crypto.psi import TOKEN_BYTES
from executors.crossdomain.errors import CrossDomainProtocolError
from executors.crossdomain.messages import (
    BlindedBatches,
    DecryptReply,
    DecryptRequest,
    Message,
    Payloads,
    ReblindedBatches,
    ShareSumReply,
    ShareSumRequest,
)
from executors.crossdomain.plan import Side


def encode(message: Message) -> bytes:
    """``message`` as compact JSON bytes (see the module docstring)."""
    body: dict[str, Any]
    if isinstance(message, BlindedBatches):
        body = {"batches": _token_batches(message.batches), "helper_shares": _b64s(message.helper_shares)}
    elif isinstance(message, ReblindedBatches):
        body = {"batches": _token_batches(message.batches)}
    elif isinstance(message, Payloads):
        body = {
            "group_keys": [[_key_value(v) for v in key] for key in message.group_keys],
            "one_row_per_unit": message.one_row_per_unit,
            "paillier_n": None if message.paillier_n is None else str(message.paillier_n),
            "slots": message.slots,
            "ciphertexts": [[str(c) for c in batch] for batch in message.ciphertexts],
            "gateway_shares": _b64s(message.gateway_shares),
        }
    elif isinstance(message, DecryptRequest):
        body = {"ciphertexts": [str(c) for c in message.ciphertexts]}
    elif isinstance(message, DecryptReply):
        body = {"masked": [str(c) for c in message.masked]}
    elif isinstance(message, ShareSumRequest):
        body = {"cells": [[batch, list(positions)] for batch, positions in message.cells]}
    else:
        body = {"sums": _b64(message.sums)}
    body = {"type": type(message).__name__, "origin": message.origin.value, **body}
    return json.dumps(body, separators=(",", ":")).encode()


def decode(data: bytes) -> Message:
    """The message ``data`` holds; :class:`CrossDomainProtocolError` for anything malformed."""
    try:
        body = json.loads(data)
        origin = Side(body["origin"])
        reader = _READERS[body["type"]]
        return reader(origin, body)
    except CrossDomainProtocolError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        # The class only: the message text of a parse error could quote the bytes.
        raise CrossDomainProtocolError(f"a protocol message is malformed ({type(exc).__name__})") from exc


def _read_blinded(origin: Side, body: Mapping[str, Any]) -> Message:
    return BlindedBatches(origin, _read_token_batches(body["batches"]), _unb64s(body["helper_shares"]))


def _read_reblinded(origin: Side, body: Mapping[str, Any]) -> Message:
    return ReblindedBatches(origin, _read_token_batches(body["batches"]))


def _read_payloads(origin: Side, body: Mapping[str, Any]) -> Message:
    n = body["paillier_n"]
    return Payloads(
        origin=origin,
        group_keys=tuple(tuple(_read_key_value(v) for v in _list(key)) for key in _list(body["group_keys"])),
        one_row_per_unit=_bool(body["one_row_per_unit"]),
        paillier_n=None if n is None else int(n),
        slots=_int(body["slots"]),
        ciphertexts=tuple(tuple(int(c) for c in _list(batch)) for batch in _list(body["ciphertexts"])),
        gateway_shares=_unb64s(body["gateway_shares"]),
    )


def _read_decrypt_request(origin: Side, body: Mapping[str, Any]) -> Message:
    return DecryptRequest(origin, tuple(int(c) for c in _list(body["ciphertexts"])))


def _read_decrypt_reply(origin: Side, body: Mapping[str, Any]) -> Message:
    return DecryptReply(origin, tuple(int(c) for c in _list(body["masked"])))


def _read_share_request(origin: Side, body: Mapping[str, Any]) -> Message:
    cells = tuple(
        (_int(batch), tuple(_int(p) for p in _list(positions)))
        for batch, positions in (_list(cell) for cell in _list(body["cells"]))
    )
    return ShareSumRequest(origin, cells)


def _read_share_reply(origin: Side, body: Mapping[str, Any]) -> Message:
    return ShareSumReply(origin, _unb64(body["sums"]))


_READERS: Mapping[str, Callable[[Side, Mapping[str, Any]], Message]] = {
    "BlindedBatches": _read_blinded,
    "ReblindedBatches": _read_reblinded,
    "Payloads": _read_payloads,
    "DecryptRequest": _read_decrypt_request,
    "DecryptReply": _read_decrypt_reply,
    "ShareSumRequest": _read_share_request,
    "ShareSumReply": _read_share_reply,
}


def _token_batches(batches: Sequence[Sequence[bytes]]) -> list[str]:
    # One base64 string per batch of fixed-size tokens: compact, and the sizes are checked on reading.
    return [_b64(b"".join(batch)) for batch in batches]


def _read_token_batches(value: object) -> tuple[tuple[bytes, ...], ...]:
    out = []
    for raw in (_unb64(item) for item in _list(value)):
        if len(raw) % TOKEN_BYTES:
            raise CrossDomainProtocolError("a batch of tokens is not a whole number of tokens")
        out.append(tuple(raw[i : i + TOKEN_BYTES] for i in range(0, len(raw), TOKEN_BYTES)))
    return tuple(out)


def _key_value(value: object) -> object:
    if isinstance(value, dt.datetime):
        return {"timestamp": value.isoformat()}
    if isinstance(value, dt.date):
        return {"date": value.isoformat()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, decimal.Decimal):
        return {"decimal": str(value)}
    if hasattr(value, "item") and not isinstance(value, bytes):  # a numpy scalar
        return _key_value(value.item())
    # Any other type (a time, an interval, bytes): its text. Never a failure, which would fire only
    # when some row holds such a key, and so say whether the rows a filter leaves are empty.
    return str(value)


def _read_key_value(value: object) -> object:
    if isinstance(value, dict):
        if set(value) == {"date"}:
            return dt.date.fromisoformat(str(value["date"]))
        if set(value) == {"timestamp"}:
            return dt.datetime.fromisoformat(str(value["timestamp"]))
        if set(value) == {"decimal"}:
            return decimal.Decimal(str(value["decimal"]))
        raise CrossDomainProtocolError("a group key value is malformed")
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise CrossDomainProtocolError("a group key value is malformed")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64s(items: Sequence[bytes]) -> list[str]:
    return [_b64(item) for item in items]


def _unb64(value: object) -> bytes:
    if not isinstance(value, str):
        raise CrossDomainProtocolError("a protocol message is malformed (bytes expected)")
    return base64.b64decode(value, validate=True)


def _unb64s(value: object) -> tuple[bytes, ...]:
    return tuple(_unb64(item) for item in _list(value))


def _list(value: object) -> list[Any]:
    if not isinstance(value, list):
        raise CrossDomainProtocolError("a protocol message is malformed (list expected)")
    return value


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise CrossDomainProtocolError("a protocol message is malformed (integer expected)")
    return value


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise CrossDomainProtocolError("a protocol message is malformed (boolean expected)")
    return value

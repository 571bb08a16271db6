"""Request bodies read as JSON, strictly. Python's json reads NaN, Infinity and -Infinity, and reads
1e400 as infinity; JSON (RFC 8259) has none of them. A body holding one is answered as any other
body that is not JSON (422, `json_invalid`, with the reason and where), before a route sees it:
a non-finite number would otherwise reach a model (a 500 when the validation error quoting it
could not be written back as JSON) or, in a field a model ignores, be accepted in silence.

Every router is made with `route_class=StrictJsonRoute`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn

from fastapi import Request, Response
from fastapi.routing import APIRoute


class _NotJsonNumber(Exception):
    pass


def _no_constant(_name: str) -> NoReturn:
    raise _NotJsonNumber


def _finite(digits: str) -> float:
    value = float(digits)
    if math.isinf(value):
        raise _NotJsonNumber
    return value


_DECODER = json.JSONDecoder(parse_float=_finite, parse_constant=_no_constant)
# Strings (skipped), the constants, and numbers: to say where the offending number is.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|NaN|-?Infinity|-?[0-9][0-9.eE+-]*')


def loads(text: str) -> Any:
    """The JSON value of `text`; json.JSONDecodeError for anything that is not JSON."""
    try:
        return _DECODER.decode(text)
    except _NotJsonNumber:
        for token in _TOKENS.finditer(text):
            word = token.group()
            if word[0] == '"':
                continue
            if word in ("NaN", "Infinity", "-Infinity"):
                raise json.JSONDecodeError(f"{word} is not a JSON number", text, token.start()) from None
            if math.isinf(float(word)):
                raise json.JSONDecodeError(f"{word} is too large for a number", text, token.start()) from None
        raise json.JSONDecodeError("a number JSON does not have", text, 0) from None


class StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            self._json = loads(body.decode(json.detect_encoding(body), "surrogatepass"))
        return self._json


class StrictJsonRoute(APIRoute):
    """A route whose body is read by `loads`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJsonRequest(request.scope, request.receive))

        return strict

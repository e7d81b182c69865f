"""An encoded slash (%2F) in the path is part of a segment, not a separator (RFC 3986, section 2.2).

Servers hand the app the decoded path, in which /hello/a%2Fb looks like three segments and so matches no
route (404). Routing on a path decoded segment by segment makes it the username "a%2Fb", which the contract
answers with a 400 like any other username that is not letters.
"""

import re
from urllib.parse import unquote

from starlette.types import ASGIApp, Receive, Scope, Send

_ENCODED_SLASH = re.compile(r"%2F", re.IGNORECASE)


class EncodedSlashesStayInSegments:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw_path: bytes | None = scope.get("raw_path")
        if scope["type"] == "http" and raw_path and b"%2" in raw_path:
            parts = _ENCODED_SLASH.split(raw_path.decode("latin-1"))
            if len(parts) > 1:
                scope = {**scope, "path": "%2F".join(unquote(part) for part in parts)}
        await self.app(scope, receive, send)

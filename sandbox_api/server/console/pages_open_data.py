"""The public open-data pages: every published table, and one table with its CSV and JSON links.

Open to everyone, signed in or not, like the API's ``/v1/open-data``: a table is here only because a
policy officer published it (services/open_data.py). The pages read through the same service.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from sandbox_api.server.console.web import PREFIX, VisitorDep
from sandbox_api.server.routes.open_data import open_data

router = APIRouter(prefix=PREFIX + "/open-data", include_in_schema=False)


@router.get("")
def open_data_page(who: VisitorDep) -> Response:
    return who.page("open_data.html", entries=open_data(who.services).catalog(), table=None)


@router.get("/{publication_id}")
def open_data_table_page(publication_id: str, who: VisitorDep) -> Response:
    return who.page("open_data.html", entries=[], table=open_data(who.services).published(publication_id))

"""The open-data endpoints of ``SandboxClient``: proposing a released result for the public catalog,
the policy officer's decision, withdrawal, and reading the public catalog (which needs no token)."""

from __future__ import annotations

from typing import Literal

from sandbox_api.client.transport import HttpSession
from sandbox_api.schemas import OpenDataEntry, OpenDataOut, PublicationOut

PublicationState = Literal["proposed", "published", "refused", "withdrawn"]


class OpenDataApi(HttpSession):
    """``/v1/publications`` and ``/v1/open-data`` (``SandboxClient`` holds every endpoint group)."""

    def propose_publication(self, job_id: str, *, title: str, description: str = "") -> PublicationOut:
        """Propose one of your released results for the public catalog; a policy officer decides."""
        body = {"job_id": job_id, "title": title, "description": description}
        return self._model(PublicationOut, "POST", "/v1/publications", json=body)

    def list_publications(self, *, state: PublicationState | None = None) -> list[PublicationOut]:
        """Proposals and their decisions, newest first (an operator sees their own)."""
        return self._models(PublicationOut, "/v1/publications", key="publications", params={"state": state})

    def get_publication(self, publication_id: str) -> PublicationOut:
        return self._model(PublicationOut, "GET", f"/v1/publications/{publication_id}")

    def publish(self, publication_id: str, *, reason: str = "") -> PublicationOut:
        return self._decide_publication(publication_id, "publish", reason)

    def refuse_publication(self, publication_id: str, *, reason: str) -> PublicationOut:
        return self._decide_publication(publication_id, "refuse", reason)

    def withdraw_publication(self, publication_id: str, *, reason: str) -> PublicationOut:
        return self._decide_publication(publication_id, "withdraw", reason)

    def _decide_publication(self, publication_id: str, action: str, reason: str) -> PublicationOut:
        path = f"/v1/publications/{publication_id}/{action}"
        return self._model(PublicationOut, "POST", path, json={"reason": reason})

    # -- the public catalog (no token needed) -------------------------------------------------------

    def open_data(self) -> list[OpenDataEntry]:
        """Every published table, newest first."""
        return self._models(OpenDataEntry, "/v1/open-data", key="entries")

    def open_data_table(self, publication_id: str) -> OpenDataOut:
        """One published table with its signed receipt (check it with ``client.verify``)."""
        return self._model(OpenDataOut, "GET", f"/v1/open-data/{publication_id}")

    def open_data_csv(self, publication_id: str) -> str:
        """One published table as CSV text."""
        return self._send("GET", f"/v1/open-data/{publication_id}/data.csv").text

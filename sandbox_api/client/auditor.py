"""The auditor's side of the Python client: receipts, signing keys, the audit bundle, replay.

``AuditorClient`` extends ``SandboxClient`` with the auditing endpoints. Receipts, bundles and the
published keys are returned as plain JSON values, exactly as signed, so they can be saved and verified
offline with ``sandbox_api.client.verify`` (or ``sandbox receipt verify`` / ``sandbox audit verify``): a model
would drop or reorder members the signature covers. Replay, key rotation and shredding answer typed
models.
"""

from __future__ import annotations

from typing import Any

import httpx

from sandbox_api.client.api_client import ClientError, SandboxClient
from sandbox_api.schemas import ReplayOut, ShredOut, SigningKeyRotated


def fetch_signing_keys(
    base_url: str, *, timeout: float = 30, transport: httpx.BaseTransport | None = None
) -> dict[str, Any]:
    """The published signing keys, fetched without any token (``GET /v1/keys/signing``)."""
    url = base_url.rstrip("/") + "/v1/keys/signing"
    try:
        with httpx.Client(timeout=timeout, transport=transport) as http:
            response = http.get(url)
    except httpx.TransportError as exc:
        raise ClientError(0, "unreachable", f"cannot reach the gateway at {base_url}: {exc}") from exc
    if response.status_code != 200:
        raise ClientError(response.status_code, "http-error", f"GET {url} answered {response.status_code}")
    body = response.json()
    if not isinstance(body, dict):
        raise ClientError(200, "unexpected-response", f"GET {url} did not answer a JSON object")
    return body


class AuditorClient(SandboxClient):
    """``SandboxClient`` plus the receipt, key, bundle, replay and crypto-shredding endpoints."""

    def _object(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        body = self._json(method, path, **kwargs)
        if not isinstance(body, dict):
            raise ClientError(200, "unexpected-response", f"{method} {path} did not answer a JSON object")
        return body

    def signing_keys(self) -> dict[str, Any]:
        """The published signing keys with their validity (no token needed): save it to verify offline."""
        return self._object("GET", "/v1/keys/signing")

    def rotate_signing_key(self) -> SigningKeyRotated:
        """Admins: start signing with a new key; the old one stays published."""
        return self._model(SigningKeyRotated, "POST", "/v1/keys/signing/rotate")

    def receipt(self, job_id: str) -> dict[str, Any]:
        """The signed receipt of a released job (its operator, auditors, admins)."""
        return self._object("GET", f"/v1/jobs/{job_id}/receipt")

    def result_document(self, job_id: str) -> dict[str, Any]:
        """The operator's released result as served (columns, rows, result_hash, receipt), unparsed."""
        return self._object("GET", f"/v1/jobs/{job_id}/result")

    def replay(self, job_id: str) -> ReplayOut:
        """Auditors: run the job again in the context it ran under; ``outcome`` says how it compared.

        On a mismatch, ``kind`` says which one: ``release-differs`` (the evidence and the replay
        disagree: an incident) or ``context-unavailable`` (replay could not rebuild the job's context,
        a replay defect); each entry of ``mismatches`` carries its own ``kind``.
        """
        return self._model(ReplayOut, "POST", f"/v1/jobs/{job_id}/replay")

    def audit_bundle(self) -> dict[str, Any]:
        """Auditors: events, signed checkpoints and public keys in one document (the export is audited)."""
        return self._object("GET", "/v1/audit/bundle")

    def register_witness(self, *, name: str, domain: str | None, public_key: str) -> dict[str, Any]:
        """Admins: register an audit witness with its public key (hex)."""
        body = {"name": name, "domain": domain, "public_key": public_key}
        return self._object("POST", "/v1/witnesses", json=body)

    def witnesses(self) -> list[dict[str, Any]]:
        """Auditors and admins: the registered witnesses with their public keys."""
        body = self._json("GET", "/v1/witnesses")
        if not isinstance(body, list):
            raise ClientError(200, "unexpected-response", "GET /v1/witnesses did not answer a list")
        return body

    def checkpoints(
        self, *, unwitnessed_by: str | None = None, since_seq: int | None = None, limit: int = 1000
    ) -> dict[str, Any]:
        """Auditors: stored checkpoints with their co-signatures and the required witnesses they lack."""
        params: dict[str, Any] = {"limit": limit}
        if unwitnessed_by is not None:
            params["unwitnessed_by"] = unwitnessed_by
        if since_seq is not None:
            params["since_seq"] = since_seq
        return self._object("GET", "/v1/audit/checkpoints", params=params)

    def cosign(self, seq: int, signature: dict[str, Any]) -> dict[str, Any]:
        """A witness (an auditor's token): store its co-signature of the checkpoint at ``seq``."""
        return self._object("POST", f"/v1/audit/checkpoints/{seq}/witness", json=signature)

    def shred_version(self, domain: str, name: str, version: str, *, reason: str = "") -> ShredOut:
        """The domain's steward or an admin: destroy a version's data key for good."""
        return self._model(
            ShredOut,
            "POST",
            f"/v1/datasets/{domain}/{name}/versions/{version}/shred",
            json={"reason": reason},
        )

"""Every list answers one page at a time: ``limit`` (at most 1000) and ``offset``, with the ``total``."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.auth_support import OFFICER

CHP_PLANT = "914101022286058318"
LISTS = ["/v1/quality/findings", "/v1/restatements/substitutions", f"/v1/review/periods/{CHP_PLANT}/2024-01/evidence",
         "/v1/enterprises", "/v1/review/queue", "/v1/review/audit"]


def test_findings_page_through_the_whole_list_without_gaps_or_repeats(client: TestClient) -> None:
    whole = client.get("/v1/quality/findings", params={"limit": 1000}, headers=OFFICER).json()
    assert whole["total"] == len(whole["items"]) > 2
    paged = []
    for offset in range(0, whole["total"], 2):
        page = client.get("/v1/quality/findings", params={"limit": 2, "offset": offset}, headers=OFFICER).json()
        assert page["total"] == whole["total"] and len(page["items"]) <= 2
        paged += page["items"]
    assert [f["id"] for f in paged] == [f["id"] for f in whole["items"]]


def test_every_list_refuses_a_page_larger_than_the_limit_and_a_negative_offset(client: TestClient) -> None:
    for url in LISTS:
        first = client.get(url, params={"limit": 1}, headers=OFFICER)
        assert first.status_code == 200 and first.json()["limit"] == 1 and len(first.json()["items"]) <= 1, url
        for params in ({"limit": 1001}, {"limit": 0}, {"offset": -1}):
            refused = client.get(url, params=params, headers=OFFICER)
            assert refused.status_code == 422 and refused.json()["code"] == "invalid_request", (url, params)

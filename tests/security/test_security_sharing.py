"""Optional third-party sharing: a grant covers chosen supplies, data kinds and a period of at most 12 months; its
bearer token works only on the read-only JSON API for what it covers; revocation counts from the next request."""

import re

from security_testkit import BRUNO, csrf_token_of, login_client, post_form

WINDOW = {"from": "2026-03-01", "to": "2026-04-01"}


def create_grant(client, **changes):
    token = csrf_token_of(client.get("/").get_data(as_text=True))
    body = {"third_party": "Eficiencia SpA", "supply_ids": ["30000001"], "kinds": ["consumption"], **WINDOW,
            **changes}
    return client.post("/api/v1/grants", json=body, headers={"X-CSRFToken": token})


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_a_grant_reads_only_the_supplies_kinds_and_period_it_covers(app):
    owner = login_client(app)
    response = create_grant(owner)
    assert response.status_code == 201
    grant = response.get_json()
    token = grant.pop("token")
    assert grant["active"] and grant["supply_ids"] == ["30000001"] and grant["kinds"] == ["consumption"]

    third_party = app.test_client()  # no cookies: only the bearer token
    supplies = third_party.get("/api/v1/supplies", headers=bearer(token))
    assert supplies.status_code == 200
    assert [row["supply_id"] for row in supplies.get_json()] == ["30000001"]
    inside = "/api/v1/supplies/30000001/consumption?granularity=day&from=2026-03-25&to=2026-04-01"
    assert third_party.get(inside, headers=bearer(token)).status_code == 200
    # outside the period, without an explicit period, another supply, another kind
    assert third_party.get("/api/v1/supplies/30000001/consumption?granularity=day&from=2026-03-25&to=2026-04-05",
                           headers=bearer(token)).status_code == 403
    assert third_party.get("/api/v1/supplies/30000001/consumption", headers=bearer(token)).status_code == 403
    assert third_party.get("/api/v1/supplies/30000002/consumption?from=2026-03-25&to=2026-04-01",
                           headers=bearer(token)).status_code == 404
    assert third_party.get("/api/v1/supplies/30000001/bills", headers=bearer(token)).status_code == 404
    # never the pages, never another customer's data, never a write, never anything beyond the read-only API
    assert app.test_client().get("/supplies/30000001", headers=bearer(token)).status_code == 302
    assert third_party.get("/api/v1/supplies/30000003/consumption?from=2026-03-25&to=2026-04-01",
                           headers=bearer(token)).status_code == 404
    assert third_party.get("/api/v1/grants", headers=bearer(token)).status_code == 401
    assert third_party.post("/api/v1/grants", json={}, headers=bearer(token)).status_code in (400, 401)
    assert third_party.get("/api/v1/supplies/30000001/export.csv?from=2026-03-25&to=2026-04-01",
                           headers=bearer(token)).status_code == 401
    assert third_party.get("/api/v1/supplies", headers=bearer(token + "x")).status_code == 401


def test_bills_grant_sees_only_bills_inside_its_period(app):
    owner = login_client(app)
    token = create_grant(owner, kinds=["bills"]).get_json()["token"]
    client = app.test_client()
    bills = client.get("/api/v1/supplies/30000001/bills", headers=bearer(token)).get_json()
    assert [bill["bill_id"] for bill in bills] == ["B30000001-202603"]
    assert client.get("/api/v1/supplies/30000001/bills/B30000001-202603", headers=bearer(token)).status_code == 200
    assert client.get("/api/v1/supplies/30000001/bills/B30000001-202602", headers=bearer(token)).status_code == 404


def test_revocation_takes_effect_on_the_next_request(app):
    owner = login_client(app)
    grant = create_grant(owner).get_json()
    client = app.test_client()
    assert client.get("/api/v1/supplies", headers=bearer(grant["token"])).status_code == 200
    token = csrf_token_of(owner.get("/").get_data(as_text=True))
    assert owner.delete(f"/api/v1/grants/{grant['grant_id']}", headers={"X-CSRFToken": token}).status_code == 204
    assert client.get("/api/v1/supplies", headers=bearer(grant["token"])).status_code == 401
    listed = owner.get("/api/v1/grants").get_json()
    assert listed[0]["grant_id"] == grant["grant_id"] and not listed[0]["active"] and listed[0]["revoked_at"]


def test_grants_expire_and_periods_are_at_most_12_months(app):
    owner = login_client(app)
    too_long = create_grant(owner, **{"from": "2025-01-01", "to": "2026-01-02"})
    assert too_long.status_code == 400 and too_long.get_json()["field"] == "to"
    assert create_grant(owner, **{"from": "2025-01-01", "to": "2026-01-01"}).status_code == 201
    assert create_grant(owner, kinds=["everything"]).status_code == 400
    assert create_grant(owner, supply_ids=["30000003"]).status_code == 404  # not hers: like a missing one
    grant = create_grant(owner).get_json()
    from security_testkit import advance_clock

    advance_clock(app, 366 * 24 * 3600)
    assert app.test_client().get("/api/v1/supplies", headers=bearer(grant["token"])).status_code == 401


def test_sharing_page_creates_lists_and_revokes(app):
    owner = login_client(app)
    response = post_form(owner, "/sharing", {"third_party": "Ahorro Hogar", "supply_ids": ["30000001", "30000002"],
                                             "kinds": ["consumption", "bills"], **WINDOW})
    assert response.status_code == 201
    html = response.get_data(as_text=True)
    token = re.search(r'class="grant-token">([^<]+)<', html).group(1)
    assert "Ahorro Hogar" in html and "Vigente" in html
    assert app.test_client().get("/api/v1/supplies", headers=bearer(token)).status_code == 200
    grant_id = re.search(r'/sharing/([^/]+)/revoke', html).group(1)
    # another customer cannot revoke it
    assert post_form(login_client(app, BRUNO), f"/sharing/{grant_id}/revoke", {}, page="/sharing").status_code == 404
    assert app.test_client().get("/api/v1/supplies", headers=bearer(token)).status_code == 200
    assert post_form(owner, f"/sharing/{grant_id}/revoke", {}, page="/sharing").status_code == 302
    assert "Revocada" in owner.get("/sharing").get_data(as_text=True)
    assert app.test_client().get("/api/v1/supplies", headers=bearer(token)).status_code == 401

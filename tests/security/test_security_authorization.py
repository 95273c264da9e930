"""Authorization by walking the whole URL map: every route that takes an object id (supply, bill, export,
passthrough request, grant, session, token, ...) answers customer A with 404 for customer B's objects, exactly as
for objects that do not exist. Routes added later are covered without anyone listing them here."""

import pytest

from security_testkit import BRUNO, login_client

# arguments that are not object ids, by endpoint (with the reason)
NOT_OBJECT_ARGUMENTS = {
    "static": "public assets, no customer data",
}
OWN_SUPPLY = "30000001"
# argument -> (customer B's real object, an object that does not exist); unknown arguments get a made-up value
FOREIGN_AND_MISSING = {
    "supply_id": ("30000003", "39999999"),
    "bill_id": ("B30000003-202603", "B39999999-202603"),
}
MADE_UP = "zz0000000000zz"
STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}


def bruno_objects(app) -> dict[str, str]:
    """Customer B's real ids for the kinds this module knows how to create."""
    store = app.extensions["accounts"]
    bruno = store.find_by_email(BRUNO["email"])
    grant, _ = store.create_grant(bruno, "Tercero de Bruno", ["30000003"], ["consumption"], "2026-01-01",
                                  "2026-06-01", store.now() + 3600)
    store.start_session(bruno.id, "test", "127.0.0.1")
    [bruno_session] = store.list_sessions(bruno.id, 900, 3600)
    return {**{name: pair[0] for name, pair in FOREIGN_AND_MISSING.items()},
            "grant_id": grant["grant_id"], "session_id": bruno_session["public_id"]}


def variants(arguments: set[str], foreign: dict[str, str]) -> list[tuple[str, dict]]:
    missing = {name: FOREIGN_AND_MISSING.get(name, (None, MADE_UP))[1] for name in arguments}
    foreign_values = {name: foreign.get(name, missing[name]) for name in arguments}
    cases = [("foreign", foreign_values), ("missing", missing)]
    if "supply_id" in arguments and len(arguments) > 1:
        # A's own supply with B's (or no) sub-object: the sub-object must be checked too, not only the supply
        cases.append(("own supply, foreign object", {**foreign_values, "supply_id": OWN_SUPPLY}))
        cases.append(("own supply, missing object", {**missing, "supply_id": OWN_SUPPLY}))
    return cases


def call(client, method: str, path: str, token: str):
    headers = {"X-CSRFToken": token}
    if method == "GET":
        return client.get(path)
    return client.open(path, method=method, headers=headers, data={"csrf_token": token})


def test_every_route_with_an_object_id_answers_404_for_another_customers_objects(app):
    from security_testkit import csrf_token_of

    foreign = bruno_objects(app)
    client = login_client(app)
    token = csrf_token_of(client.get("/").get_data(as_text=True))
    checked = []
    with app.test_request_context():
        rules = [rule for rule in app.url_map.iter_rules()
                 if rule.arguments and rule.endpoint not in NOT_OBJECT_ARGUMENTS]
    assert {"portal.supply", "api.bill", "sharing.revoke_grant_api"} <= {rule.endpoint for rule in rules}
    for rule in rules:
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            bodies = {}
            for label, values in variants(set(rule.arguments), foreign):
                with app.test_request_context():
                    from flask import url_for

                    path = url_for(rule.endpoint, **values)
                response = call(client, method, path, token)
                assert response.status_code == 404, (method, rule.rule, label, path, response.status_code)
                body = response.get_data(as_text=True)
                for value in values.values():
                    body = body.replace(value, "<ID>")
                bodies[label] = body
                checked.append((method, rule.rule, label))
            assert bodies["foreign"] == bodies["missing"], (method, rule.rule)
    # still logged in and nothing of B's changed: the grant and session are intact
    assert client.get("/api/v1/supplies").status_code == 200
    store = app.extensions["accounts"]
    bruno = store.find_by_email(BRUNO["email"])
    assert store.list_grants(bruno.id)[0]["active"]
    assert len(store.list_sessions(bruno.id, 900, 3600)) == 1
    assert len(checked) > 40


@pytest.mark.parametrize("path", ["/supplies/30000003", "/api/v1/supplies/30000003/bills/B30000003-202603"])
def test_the_owner_does_see_what_others_cannot(app, path):
    assert login_client(app, BRUNO).get(path).status_code == 200

"""What an upload that is not what it should be is told: the fix, in its own terms."""

from typing import Any

from fastapi.testclient import TestClient

from tests.api.helpers import CSV, assert_problem, count_rows, create_series


def post(client: TestClient, auth: dict[str, str], sid: int, body: str, query: str = "") -> Any:
    return client.post(f"/v1/series/{sid}/readings{query}", content=body.encode(),
                       headers={**auth, **CSV})


def test_a_body_of_one_column_asks_for_a_timestamp_and_a_value(client: TestClient,
                                                              auth: dict[str, str]) -> None:
    sid = create_series(client, auth)["id"]
    problem = assert_problem(post(client, auth, sid, "hello world\nhow are you\n"), 422,
                             "value_col")
    assert "names one column" in problem["detail"] and "`ts,value`" in problem["detail"]
    assert "None" not in problem["detail"]


def test_three_columns_without_value_col_are_refused_naming_them(
        client: TestClient, auth: dict[str, str], database_url: str) -> None:
    sid = create_series(client, auth)["id"]
    body = "ts,kwh,kvarh\n2024-01-01 00:00,1,7\n2024-01-01 00:30,2,8\n"
    problem = assert_problem(post(client, auth, sid, body), 422, "value_col")
    assert "send `value_col`" in problem["detail"] and "['kwh', 'kvarh']" in problem["detail"]
    assert count_rows(database_url, "readings") == 0
    assert post(client, auth, sid, body, "?value_col=kvarh").json()["inserted"] == 2
    # With the timestamps in another column, the one column left is the value.
    assert post(client, auth, sid, "kwh,ts\n3,2024-01-01 01:00\n", "?ts_col=ts").status_code == 200


def test_a_header_alone_is_not_taken_for_lost_line_breaks(client: TestClient,
                                                          auth: dict[str, str]) -> None:
    sid = create_series(client, auth)["id"]
    for body in ("ts,value\n", "ts,value"):
        problem = assert_problem(post(client, auth, sid, body), 422, "body")
        assert "only a header line" in problem["detail"] and "curl" not in problem["detail"]
    stripped = "ts,value2024-01-01 00:00,12024-01-01 00:30,2"
    assert "curl --data-binary" in assert_problem(post(client, auth, sid, stripped), 422,
                                                  "body")["detail"]


def test_rows_count_readings_from_one_in_csv_and_json_alike(client: TestClient,
                                                            auth: dict[str, str]) -> None:
    sid = create_series(client, auth)["id"]
    csv = assert_problem(post(client, auth, sid, "ts,value\n2024-01-01 00:00,x\n"), 422, "value")
    document = {"readings": [{"ts": "2024-01-01T00:00:00Z", "value": "x"}]}
    json = assert_problem(client.post(f"/v1/series/{sid}/readings", json=document,
                                      headers=auth), 422)
    off_grid = {"readings": [{"ts": "2024-01-01T00:10:00Z", "value": 1}]}
    grid = assert_problem(client.post(f"/v1/series/{sid}/readings", json=off_grid,
                                      headers=auth), 422, "ts")
    for problem in (csv, json, grid):
        assert [e["row"] for e in problem["errors"]] == [1]
        assert problem["detail"].endswith("(rows count readings from 1)")


def test_a_body_that_does_not_parse_names_the_body(client: TestClient,
                                                  auth: dict[str, str]) -> None:
    sid = create_series(client, auth)["id"]
    unreadable = 'ts,value\n"2024-01-01 00:00,1\n'
    problem = assert_problem(post(client, auth, sid, unreadable), 422, "body")
    assert problem["detail"].startswith("The body is not a readable CSV file")
    for body in (b"{not json", b"[" * 100_000):
        response = client.post(f"/v1/series/{sid}/readings", content=body,
                               headers={**auth, "Content-Type": "application/json"})
        assert assert_problem(response, 422, "body")["errors"][0]["value"] == \
            body[:80].decode()

"""Two requests linking covariates at once never close a cycle between them."""

import threading
import time

from sqlalchemy.orm import Session, sessionmaker

from app.db.covariates import CovariateLink, replace_links
from app.db.engine import lock_for_write
from app.db.tables import Series
from app.db.tenants import create_key
from app.errors import Invalid

# Long enough for the second request to reach the lock it waits on.
SETTLE_S = 0.5


def test_a_link_waits_for_the_one_that_would_close_a_cycle(
        factory: sessionmaker[Session]) -> None:
    with factory() as session, session.begin():
        tenant, _ = create_key(session=session, tenant_name="t")
        a, b = Series(tenant_id=tenant.id, name="a", freq="h"), Series(
            tenant_id=tenant.id, name="b", freq="h")
        session.add_all([a, b])
        session.flush()
        a_id, b_id = a.id, b.id
    first = factory()
    lock_for_write(first)
    replace_links(session=first, series=first.get_one(Series, a_id),
                  links=[CovariateLink(series_id=b_id, name="t", known_future=True)])
    outcome: list[str] = []

    def second() -> None:
        with factory() as session:
            lock_for_write(session)
            try:
                replace_links(session=session, series=session.get_one(Series, b_id),
                              links=[CovariateLink(series_id=a_id, name="t", known_future=True)])
                session.commit()
                outcome.append("linked")
            except Invalid as exc:
                outcome.append(exc.errors[0]["message"])

    thread = threading.Thread(target=second)
    thread.start()
    try:
        time.sleep(SETTLE_S)
        assert thread.is_alive() and outcome == []  # waiting for the first to end
        first.commit()
    finally:
        first.close()
        thread.join()
    assert outcome == ["closes a cycle of covariates"]

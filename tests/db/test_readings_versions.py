"""A series' readings version changes with every write of its readings while another series
reads it as a covariate, and with the link itself; the readings of a series nothing reads keep
theirs (a fleet's posts update no series row)."""

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from app.db import stream_rows
from app.db.covariates import CovariateLink, read_links, replace_links
from app.db.engine import lock_for_write
from app.db.readings import store_readings
from app.db.tables import Series
from app.db.tenants import create_key
from app.ingest import ReadingsBatch


def version(factory: sessionmaker[Session], series_id: int) -> int:
    with factory() as session:
        return session.get_one(Series, series_id).readings_version


def write(factory: sessionmaker[Session], series_id: int, ts_s: list[int], values: list[float],
          *, stream: bool = False) -> None:
    """Store readings as an upload (`store_readings`, replacing) or as a stream's fast path."""
    with factory() as session:
        lock_for_write(session)
        if stream:
            stream_rows.insert_new_readings(session.connection(),
                                            np.full(len(ts_s), series_id, dtype=np.int64),
                                            np.array(ts_s, dtype=np.int64), np.array(values))
        else:
            store_readings(session=session, series_id=series_id, on_conflict="replace",
                           batch=ReadingsBatch(ts_s=np.array(ts_s, dtype=np.int64),
                                               values=np.array(values)))
        session.commit()


def test_every_write_of_a_covariate_gives_it_a_new_version(
        factory: sessionmaker[Session]) -> None:
    with factory() as session, session.begin():
        tenant, _ = create_key(session=session, tenant_name="t")
        load, weather = Series(tenant_id=tenant.id, name="load", freq="h"), Series(
            tenant_id=tenant.id, name="temperature", freq="h")
        session.add_all([load, weather])
        session.flush()
        load_id, weather_id = load.id, weather.id
    write(factory, weather_id, [0, 3600], [1.0, 2.0])
    assert version(factory, weather_id) == 0  # nothing reads it yet
    with factory() as session:
        lock_for_write(session)
        replace_links(session=session, series=session.get_one(Series, load_id),
                      links=[CovariateLink(series_id=weather_id, name="temperature",
                                           known_future=True)])
        session.commit()
    seen = {0, version(factory, weather_id)}
    assert len(seen) == 2  # linking gives a new one
    with factory() as session:
        links = read_links(session=session, series_id=load_id)
    assert (links["temperature"].covariate_series_id, links["temperature"].freq,
            links["temperature"].readings_version) == (weather_id, "h", version(factory, weather_id))
    for ts_s, values, stream in (([7200], [3.0], False),  # a new reading
                                 ([3600], [2.5], False),  # one replaced
                                 ([10800], [4.0], True),  # a stream's reading
                                 # a fleet's many (PostgreSQL copies more than PG_ARRAY_MIN_ROWS)
                                 (many := [14400 + 3600 * i
                                           for i in range(stream_rows.PG_ARRAY_MIN_ROWS + 4)],
                                  [5.0] * len(many), True)):
        write(factory, weather_id, ts_s, values, stream=stream)
        seen.add(version(factory, weather_id))
    assert len(seen) == 6
    # Readings sent again unchanged write nothing; the load's own readings version nothing.
    write(factory, weather_id, [0, 3600], [1.0, 2.5])
    write(factory, load_id, [0], [10.0])
    write(factory, load_id, [3600], [11.0], stream=True)
    assert version(factory, weather_id) in seen and len(seen) == 6
    assert version(factory, load_id) == 0

"""Models: train (a job), list, read, delete, promote to a series' default."""

from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.api.deps import ForecastersDep, SessionDep, SettingsDep, TenantDep
from app.api.params import IdPath, IdQuery, Offset
from app.api.quotas import check_active_jobs
from app.api.schemas import JobPublic, ModelAccepted, ModelCreate, ModelPublic, Page
from app.api.session_release import SessionReleasingRoute
from app.covariate_inputs import check_linked
from app.db import covariates as covariates_db
from app.db import forecast_models as models_db
from app.db import series as series_db
from app.db.engine import lock_for_write
from app.db.tables import ForecastModel, Series
from app.errors import Invalid, field_error
from app.ml.data import min_readings, too_short_message
from app.ml.spec import ResolvedSpec, resolve_spec
from app.model_files import remove_model_files
from app.timegrid import grid_steps, step_seconds

router = APIRouter(prefix="/v1/models", tags=["models"], route_class=SessionReleasingRoute)


def to_public(session: SessionDep, model: ForecastModel) -> ModelPublic:
    ids = models_db.series_ids(session=session, model_id=model.id)
    defaults = {sid: models_db.default_model_ref(session=session, series_id=sid) for sid in ids}
    columns = {name: getattr(model, name) for name in ModelPublic.model_fields
               if hasattr(model, name)}
    return ModelPublic(**columns, series_ids=ids, is_default=any(
        d is not None and d.id == model.id for d in defaults.values()))


@router.post("", status_code=202, response_model=ModelAccepted,
             summary="Train a model in the background",
             description="Answers at once with the model (status `training`) and its job; "
                         "follow the job at `/v1/jobs/{id}`.")
def create_model(body: ModelCreate, tenant: TenantDep, session: SessionDep,
                 settings: SettingsDep) -> ModelAccepted:
    lock_for_write(session)
    check_active_jobs(session=session, tenant_id=tenant.id, limit=settings.tenant_max_active_jobs)
    series = [series_db.get_series(session=session, tenant_id=tenant.id, series_id=sid)
              for sid in dict.fromkeys(body.series_ids)]
    freqs = {s.freq for s in series}
    if len(freqs) > 1:
        raise Invalid("All series of one model must share a frequency",
                      errors=[field_error("series_ids", body.series_ids,
                                          f"frequencies differ: {sorted(freqs)}")])
    covariates = _covariate_names(session, series, body)
    try:
        resolved = resolve_spec(body.spec, series[0].freq, covariates)
    except ValueError as exc:
        raise Invalid(str(exc), errors=[field_error("spec", body.spec.model_dump(), str(exc))]
                      ) from None
    zones = {s.timezone for s in series}
    if len(zones) > 1:
        raise Invalid("All series of one model must share a time zone",
                      errors=[field_error("series_ids", body.series_ids,
                                          f"time zones differ: {sorted(zones)}")])
    if resolved.stateful and step_seconds(resolved.freq) is None:
        # Stream models step by a fixed duration; weeks, months and quarters are calendar steps.
        message = (f"A stream (stateful) model needs a fixed step, and {resolved.freq} is a "
                   "calendar frequency; send `\"stateful\": false` for a window model")
        raise Invalid(message, errors=[field_error("spec.stateful", body.spec.stateful, message)])
    _check_length(session, series, resolved)
    model, job = models_db.create_with_job(
        session=session, tenant_id=tenant.id, series=series,
        spec=body.spec.model_dump(mode="json"), max_attempts=settings.job_max_attempts)
    session.commit()
    return ModelAccepted(model=to_public(session, model), job=JobPublic.model_validate(job))


def _covariate_names(session: SessionDep, series: list[Series], body: ModelCreate
                     ) -> tuple[str, ...]:
    """The covariates the model will read: the spec's, each linked on every series, or (with
    none named) those the series link, which must then be the same names for all."""
    offered = [[link.name for link in covariates_db.links_of(session=session, series_id=s.id)]
               for s in series]
    if body.spec.covariates is not None:
        for links in offered:
            check_linked(links, body.spec.covariates, "spec.covariates")
        return tuple(body.spec.covariates)
    if any(set(names) != set(offered[0]) for names in offered):
        message = ("The series link different covariates; name those the model reads in "
                   "`spec.covariates` (each must be linked on every series)")
        raise Invalid(message, errors=[field_error("spec.covariates", None, message)])
    return tuple(offered[0])


def _check_length(session: SessionDep, series: list[Series], spec: ResolvedSpec) -> None:
    """Refuse now, not in a failed job, a series too short for the spec's parts."""
    for s in series:
        _, first_s, last_s = series_db.reading_stats(session=session, series_id=s.id)
        steps = 0 if first_s is None or last_s is None else grid_steps(first_s, last_s, s.freq)
        needed = min_readings(window=spec.window, horizon=spec.horizon,
                              period=spec.seasonal_period,
                              validation_fraction=spec.validation_fraction,
                              test_fraction=spec.test_fraction)
        if steps < needed:
            message = too_short_message(
                s.name, steps, window=spec.window, horizon=spec.horizon,
                period=spec.seasonal_period, validation_fraction=spec.validation_fraction,
                test_fraction=spec.test_fraction)
            raise Invalid(message, errors=[field_error(
                "series_ids", s.id, f"spans {steps} readings, needs at least {needed}",
                needed=needed)])


@router.get("", response_model=Page[ModelPublic], summary="List models, newest first")
def list_models(tenant: TenantDep, session: SessionDep,
                series_id: IdQuery = None,
                offset: Offset = 0,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Page[ModelPublic]:
    if series_id is not None:
        series_db.get_series(session=session, tenant_id=tenant.id, series_id=series_id)
    rows, count = models_db.list_models(session=session, tenant_id=tenant.id,
                                        series_id=series_id, offset=offset, limit=limit)
    return Page[ModelPublic](data=[to_public(session, m) for m in rows], count=count)


@router.get("/{model_id}", response_model=ModelPublic, summary="A model and its metrics")
def read_model(model_id: IdPath, tenant: TenantDep, session: SessionDep) -> ModelPublic:
    return to_public(session, models_db.get_model(session=session, tenant_id=tenant.id,
                                                  model_id=model_id))


@router.delete("/{model_id}", status_code=204,
               summary="Delete a model, its files and its job (a running job is stopped)")
def delete_model(model_id: IdPath, tenant: TenantDep, session: SessionDep,
                 settings: SettingsDep, cache: ForecastersDep) -> Response:
    lock_for_write(session)
    model = models_db.get_model(session=session, tenant_id=tenant.id, model_id=model_id)
    models_db.delete_models(session=session, model_ids=[model.id])
    session.commit()
    remove_model_files(settings.model_dir, [model_id])
    cache.evict(model_id)  # other processes never ask for it again: its row is gone
    return Response(status_code=204)


@router.post("/{model_id}/promote", response_model=ModelPublic,
             summary="Make this model the default of the series it was trained on")
def promote_model(model_id: IdPath, tenant: TenantDep, session: SessionDep) -> ModelPublic:
    lock_for_write(session)
    model = models_db.get_model(session=session, tenant_id=tenant.id, model_id=model_id)
    models_db.promote(session=session, model=model)
    session.commit()
    return to_public(session, model)


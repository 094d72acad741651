"""Forecasts at serving time, with numpy only: the one place that turns history into forecasts.

Never imports TensorFlow (the API serves with numpy; `import tensorflow` costs ~2 s and
~560 MiB). It reads meta.json and the numpy network export and builds the network's inputs with
`features`, the very code training used.

Stream state is a typed, immutable `app.ml.stream_state.State` (its encodings live there):
- stream (stateful) models: per-layer h (and c), the last reading, its deseasonalised value
  (the reading itself for raw stream models) and time. The forecast is recomputed from h, and
  the seasonal fits come from a `SeasonalSource` shared by every stream of the series, so a
  stream's state is a few hundred bytes;
- window (and bidirectional) models: the last `window` readings (deseasonalised models: the
  last `features.context_steps`, the history their seasonal fit reads).
The public methods also take a state's JSON form and then answer in it, for callers that hold
states as JSON (the API's state answer, scripts).

Profile models (trained with covariates, holidays in their day types, `features.profile`) read a
regression profile fixed at training (`profile.py`) where MSTL models read daily fits: its
`ProfileSource`, built by `profile_source` from the covariates over the steps concerned and the
series' current calendar, is the `seasonal` argument of every stream and window call, and
`forecast` builds it from its `covariates` and `calendar` arguments.

Models whose network reads covariates (`features.network_covariates`) read them through a
`CovariateTrack` over the history and the horizon (`covariate_track`): each window step's value
and the horizon's values for the future branch. A stream model steps each reading with the
covariates' values at its time, and its forecast after a step reads the horizon's from the same
track; a value the track does not hold is masked, never invented. `forecast` builds it from
`covariates`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import pandas as pd

from app.ml.artifacts import NETWORK_DIR, load_meta
from app.ml.calendar import CalendarSpec
from app.ml.covariates import require_covered
from app.ml.data import interpolate_short_gaps
from app.ml.engine import NumpyNetwork
from app.ml.features import (
    CovariateTrack,
    FeatureConfig,
    calendar,
    origin_batch,
    to_values,
    window_batch,
)
from app.ml.profile import PathFitter, ProfileSource, RegressionProfile
from app.ml.seasonal import SeasonalFitter
from app.ml.spec import ResolvedSpec
from app.ml.stream_seasonal import (
    NO_SEASON,
    HistorySeasonal,
    SeasonalSource,
    boundaries,
)
from app.ml.stream_state import State, StreamState, WindowState, from_json, to_json
from app.timegrid import NS_PER_S, fixed_step, steps_between

DEFAULT_LEVELS = (80, 95)
# Days of history a deseasonalised stream model is warmed over when it starts from history.
STREAM_WARM_DAYS = 14
# ... and at least this many readings (daily data: about two months).
STREAM_WARM_MIN_STEPS = 64
# A stream that skips more readings than this must be re-warmed from history: imputing a long
# stretch from the model's own forecasts would drift.
MAX_IMPUTED_STEPS = 1_000

# A state as a caller holds it: typed, or its JSON form (answered in the same form).
S = TypeVar("S", bound=State | dict[str, Any])
Kind = TypeVar("Kind", StreamState, WindowState)


@dataclass(frozen=True)
class Forecast:
    """Mean forecast and prediction intervals (level in percent -> bound) on the grid."""

    timestamps: pd.DatetimeIndex
    mean: np.ndarray
    lower: dict[int, np.ndarray]
    upper: dict[int, np.ndarray]

    def to_dict(self) -> dict[str, Any]:
        return {
            "timestamps": [ts.isoformat() for ts in self.timestamps],
            "mean": self.mean.tolist(),
            "intervals": {
                str(level): {"lower": self.lower[level].tolist(), "upper": self.upper[level].tolist()}
                for level in self.lower
            },
        }


class Forecaster:
    """A saved model ready to forecast from history or from per-stream state."""

    def __init__(self, meta: dict[str, Any], network: NumpyNetwork) -> None:
        self.meta = meta
        self.spec = ResolvedSpec.from_dict(meta["spec"])
        self.features = FeatureConfig.from_dict(meta["features"])
        self.network = network
        self.scales: dict[str, float] = {k: float(v) for k, v in meta["scales"].items()}
        self.quantiles = {
            int(level): np.asarray(q, dtype=np.float64) for level, q in meta["conformal"]["quantiles"].items()
        }
        self.offset = pd.tseries.frequencies.to_offset(self.spec.freq)
        # One MSTL fit per series and day, cached: batch and reading-by-reading forecasts agree.
        self.fitter = SeasonalFitter(self.features.seasonal()) if self.features.mstl else None
        self.profiles = {
            name: RegressionProfile.from_dict(profile) for name, profile in meta.get("profiles", {}).items()
        }
        self.context_steps = self.features.context_steps

    @classmethod
    def load(cls, directory: str | Path) -> Forecaster:
        return cls(load_meta(directory), NumpyNetwork.load(Path(directory) / NETWORK_DIR))

    @property
    def is_stream(self) -> bool:
        """Whether the model steps one reading at a time (stateful, not bidirectional)."""
        return self.spec.stateful and not self.spec.bidirectional

    @property
    def needs_seasonal(self) -> bool:
        """Whether the stream steps read seasonal fits (pass a `SeasonalSource` to them)."""
        return self.is_stream and self.features.deseasonalized

    @property
    def seasonal_fitter(self) -> SeasonalFitter:
        """The fitter (and its cache of fits) of a deseasonalised model, shared by its sources."""
        if self.features.profile:
            raise ValueError(
                "This model reads a regression profile fixed at training, not daily fits; build its "
                "seasonal source with `profile_source`."
            )
        if self.fitter is None:
            raise ValueError("This model reads the raw series; it makes no seasonal fits.")
        return self.fitter

    def history_seasonal(self, values: np.ndarray, timestamps: pd.DatetimeIndex) -> SeasonalSource:
        """Seasonal fits made from a block of history (what `forecast` uses)."""
        return HistorySeasonal(values, timestamps, self.seasonal_fitter)

    @property
    def uses_profile(self) -> bool:
        """Whether the model reads a regression profile (a model trained with covariates):
        its `seasonal` source comes from `profile_source`, not from stored daily fits."""
        return self.features.profile

    @property
    def covariates(self) -> tuple[str, ...]:
        """The covariates the model reads, in the profile or the network, whose values its calls
        need (empty: none)."""
        profile = self.features.covariates if self.features.profile else ()
        return tuple(dict.fromkeys([*profile, *self.features.network_covariates]))

    @property
    def reads_covariates_in_network(self) -> bool:
        """Whether the network itself reads covariates: its calls take a `CovariateTrack`."""
        return bool(self.features.network_covariates)

    def covariate_track(self, ns: np.ndarray, covariates: Mapping[str, np.ndarray]) -> CovariateTrack:
        """What the network reads of the covariates at the consecutive grid times `ns` (int64 ns,
        UTC): each one's values there (`covariates.align`; NaN where missing). A forecast reads
        the window before its origin and the horizon after it."""
        return CovariateTrack.over(ns, covariates, self.features)

    def _forecast_track(
        self, timestamps: pd.DatetimeIndex, horizon: int, covariates: Mapping[str, np.ndarray] | None
    ) -> CovariateTrack | None:
        """What the network reads of the covariates over a forecast's history and horizon, each
        network covariate covering the horizon; None for a network that reads none."""
        if not self.reads_covariates_in_network:
            return None
        future = pd.date_range(timestamps[-1] + self.offset, periods=horizon, freq=self.offset)
        ns = np.concatenate([timestamps.asi8, future.asi8])
        given = dict(covariates or {})
        for name in self.features.network_covariates:
            if name not in given:
                raise ValueError(
                    f"Received covariates {sorted(given)}, expected values of "
                    f"{list(self.features.network_covariates)} (the covariates the network reads)."
                )
            values = np.asarray(given[name], dtype=np.float64)
            if values.shape != ns.shape:
                raise ValueError(
                    f"Received covariate {name!r} with {values.size} values, expected {len(ns)}: "
                    "one per reading of the history and step of the horizon."
                )
            require_covered(name, values[len(timestamps) :], future.asi8 / NS_PER_S)
        return self.covariate_track(ns, given)

    def profile_source(
        self,
        ns: np.ndarray,
        covariates: Mapping[str, np.ndarray] | None = None,
        calendar: CalendarSpec | None = None,
        *,
        series: str | None = None,
    ) -> ProfileSource:
        """The `seasonal` source of a profile model over the consecutive grid times `ns` (int64
        ns, UTC), from each covariate's values at those times (`covariates.align`; NaN where
        missing) and the series' current calendar (special days added after training count).

        A stream step at t reads the profile at t and t + 1 step, a forecast at the origin and
        over the horizon, a window model over its window too; a covariate's past-day mean reads
        the day before each time, so start `ns` a day before the first step that matters.
        """
        profile = self.profiles[self._series(series)]
        ns = np.asarray(ns, dtype=np.int64)
        given = dict(covariates or {})
        missing = [name for name in profile.covariates if name not in given]
        if missing:
            raise ValueError(
                f"Received covariates {sorted(given)}, expected values of {list(profile.covariates)} "
                "(the covariates this model was trained with)."
            )
        return ProfileSource.over(profile, ns, {name: given[name] for name in profile.covariates}, calendar)

    # -- from history ---------------------------------------------------------------------

    def forecast(
        self,
        values: np.ndarray,
        timestamps: pd.DatetimeIndex,
        horizon: int,
        levels: tuple[int, ...] = DEFAULT_LEVELS,
        *,
        series: str | None = None,
        covariates: Mapping[str, np.ndarray] | None = None,
        calendar: CalendarSpec | None = None,
    ) -> Forecast:
        """Forecast `horizon` readings after the history `values` (NaN for missing).

        Window models read the last window; stream models warm their state over the history
        (deseasonalised ones over its last `stream_warm_steps`, each day against its own fit).
        Profile models read `covariates` (name -> values on the grid over the history and the
        horizon, len(values) + horizon each, NaN where missing) and the series' `calendar`.

        Raises:
            CovariateCoverageError: a covariate misses a value over the horizon (a ValueError
                that names the covariate and the last time it covers).
        """
        values = np.asarray(values, dtype=np.float64)
        timestamps = pd.DatetimeIndex(timestamps)
        seasonal: SeasonalSource | None = None
        if self.features.profile:
            seasonal = self._forecast_profile(timestamps, horizon, covariates, calendar, series)
        elif self.needs_seasonal:
            seasonal = self.history_seasonal(values, timestamps)
        track = self._forecast_track(timestamps, horizon, covariates)
        if seasonal is not None and self.is_stream:
            values, timestamps = values[-self.stream_warm_steps :], timestamps[-self.stream_warm_steps :]
        state = self._warm(values, timestamps, self.initial(series), seasonal, track)
        return self.forecast_from_state(state, horizon, levels, seasonal=seasonal, network_covariates=track)

    def _forecast_profile(
        self,
        timestamps: pd.DatetimeIndex,
        horizon: int,
        covariates: Mapping[str, np.ndarray] | None,
        calendar: CalendarSpec | None,
        series: str | None,
    ) -> ProfileSource:
        """The profile over the end of a forecast's history and its horizon, every covariate
        covering the horizon.

        Only the last `profile_history_steps` readings are evaluated: the profile's cost grows
        with the steps it covers, and a long history made it most of a forecast's time.
        """
        step_ns = self.step_size.value
        last_ns = int(timestamps[-1].value)
        ns = np.concatenate([timestamps.asi8, last_ns + step_ns * np.arange(1, horizon + 1, dtype=np.int64)])
        given = dict(covariates or {})
        first = max(0, len(timestamps) - self.profile_history_steps)
        for name in self.covariates:
            if name in given:
                values = np.asarray(given[name], dtype=np.float64)
                if values.shape != ns.shape:
                    raise ValueError(
                        f"Received covariate {name!r} with {values.size} values, expected {len(ns)}: "
                        "one per reading of the history and step of the horizon."
                    )
                require_covered(name, values[len(timestamps) :], ns[len(timestamps) :] / NS_PER_S)
                given[name] = values[first:]
        return self.profile_source(ns[first:], given, calendar, series=series)

    @property
    def profile_history_steps(self) -> int:
        """Readings of history a forecast from history reads the profile over.

        A stream warms over its last `stream_warm_steps`; a window model keeps its last
        `context_steps`, and fills a gap among them from the `context_steps` before the gap.
        Each step's covariate terms read the covariate over the day before it (its past-day mean
        and lags), so a day more is evaluated: on the steps read, the profile equals the one
        over the whole history.
        """
        span = self.stream_warm_steps if self.is_stream else 2 * self.context_steps
        return span + max(1, round(self.spec.steps_per_day))

    @property
    def stream_warm_steps(self) -> int:
        """Readings a deseasonalised stream is warmed over from history: two weeks.

        Each day costs one seasonal fit, and a small RNN's state forgets far sooner than that.
        """
        return max(STREAM_WARM_MIN_STEPS, round(STREAM_WARM_DAYS * self.spec.steps_per_day))

    # -- per-stream state -----------------------------------------------------------------

    def initial(self, series: str | None = None) -> State:
        """State of a stream that has seen nothing yet."""
        name = self._series(series)
        if self.is_stream:
            return StreamState(series=name, network=tuple(self.network.zero_state(1)))
        return WindowState(series=name)

    def initial_state(self, series: str | None = None) -> dict[str, Any]:
        """`initial` in the JSON form."""
        return to_json(self.initial(series))

    def warm(
        self,
        values: np.ndarray,
        timestamps: pd.DatetimeIndex,
        state: S,
        *,
        seasonal: SeasonalSource | None = None,
        network_covariates: CovariateTrack | None = None,
    ) -> S:
        """Feed a block of readings (on the grid, after the state's last one) into `state`.

        Short gaps are interpolated as in training; longer gaps are filled with the model's own
        one-step forecasts. Returns a new state; `state` is left unchanged. Deseasonalised stream
        models read their seasonal fits from `seasonal`; a network that reads covariates reads
        them from `network_covariates` (to fill gaps).
        """
        typed = _typed(state)
        return _as_given(self._warm(values, timestamps, typed, seasonal, network_covariates), state)

    def _warm(
        self,
        values: np.ndarray,
        timestamps: pd.DatetimeIndex,
        state: State,
        seasonal: SeasonalSource | None,
        track: CovariateTrack | None = None,
    ) -> State:
        values = np.asarray(values, dtype=np.float64)
        timestamps = pd.DatetimeIndex(timestamps)
        self._check_grid(values, timestamps, state)
        if len(values) == 0:
            return state
        values = interpolate_short_gaps(values)
        if isinstance(state, WindowState):
            return self._warm_window(values, timestamps, state, self._window_fitter(seasonal), track)
        source = self._source(seasonal)
        state = self._fill_to(state, timestamps[0], source, track)
        present = ~np.isnan(values)
        ns = timestamps.asi8
        # Runs of present readings go through the network in one call; gaps step by step.
        edges = np.flatnonzero(np.diff(present.astype(np.int8))) + 1
        for run in np.split(np.arange(len(values)), edges):
            if present[run[0]]:
                (state,), _ = self._run_streams(
                    [state], values[None, run], ns[None, run], [source], [track]
                )
                continue
            for i in run:
                filled = self._roll_stream(state, 1, source, track)
                (state,), _ = self._run_streams([state], filled[None], ns[None, i : i + 1], [source], [track])
        return state

    def step(
        self,
        state: S,
        value: float,
        ts: pd.Timestamp,
        *,
        seasonal: SeasonalSource | None = None,
        network_covariates: CovariateTrack | None = None,
    ) -> S:
        """Advance `state` by one reading at `ts` (NaN if missing); returns a new state.

        Readings skipped since the state's last timestamp are filled with the model's forecasts.
        """
        return self.warm(
            np.array([value], dtype=np.float64),
            pd.DatetimeIndex([ts]),
            state,
            seasonal=seasonal,
            network_covariates=network_covariates,
        )

    def forecast_from_state(
        self,
        state: State | Mapping[str, Any],
        horizon: int,
        levels: tuple[int, ...] = DEFAULT_LEVELS,
        *,
        seasonal: SeasonalSource | None = None,
        network_covariates: CovariateTrack | None = None,
    ) -> Forecast:
        """Forecast `horizon` readings after the state's last one, leaving `state` unchanged.

        Horizons longer than the network's head are rolled out recursively: forecasts are fed
        back as readings. A network that reads covariates reads them from `network_covariates`.
        """
        if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
            raise ValueError(
                f"Received an invalid value for argument `horizon`, expected a positive integer, "
                f"got {horizon!r}."
            )
        unknown = [level for level in levels if level not in self.quantiles]
        if unknown:
            raise ValueError(
                f"Received an invalid value for argument `levels`, expected levels among "
                f"{sorted(self.quantiles)}, got {list(levels)}."
            )
        state = _typed(state)
        if state.last_ns is None:
            raise ValueError("The stream has no readings yet; warm it with history first.")
        start = pd.Timestamp(state.last_ns) + self.offset
        timestamps = pd.date_range(start, periods=horizon, freq=self.offset)
        mean = self.rollout(state, horizon, seasonal=seasonal, network_covariates=network_covariates)
        widths = self.interval_widths(state.series, horizon, levels)
        lower = {level: mean - width for level, width in widths.items()}
        upper = {level: mean + width for level, width in widths.items()}
        return Forecast(timestamps=timestamps, mean=mean, lower=lower, upper=upper)

    def rollout(
        self,
        state: State,
        horizon: int,
        *,
        seasonal: SeasonalSource | None = None,
        network_covariates: CovariateTrack | None = None,
    ) -> np.ndarray:
        """The mean forecast of `horizon` readings after the state's last one: heads of
        forecasts, each fed back as readings until the horizon is covered."""
        self._check_kind(state)
        if isinstance(state, StreamState):
            return self._roll_stream(state, horizon, self._source(seasonal), network_covariates)
        return self._roll_window(state, horizon, self._window_fitter(seasonal), network_covariates)

    def interval_widths(self, series: str, horizon: int, levels: Sequence[int]) -> dict[int, np.ndarray]:
        """Each level's interval half-width per step ahead, in the series' units."""
        scale = self.scales[series]
        return {level: scale * self._widths(level, horizon) for level in levels}

    def fit_boundaries(self, ns: np.ndarray) -> np.ndarray:
        """The boundary (int64 ns) of the seasonal fit that a reading at each of `ns` (int64 ns,
        UTC) is read against: the start of its local day. A forecast step reads the fit of its
        origin's next step, so the one rule serves readings and forecasts alike."""
        return boundaries(np.asarray(ns, dtype=np.int64), self.spec.steps_per_day, self.features.timezone)

    def step_fit_boundaries(self, ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The fits a step at each of `ns` reads: its own day's (to deseasonalise the reading)
        and its next step's (for the one-step forecast after it)."""
        return self.fit_boundaries(ns), self.fit_boundaries(ns + self.step_size.value)

    def forecast_boundary_ns(self, state: State) -> int | None:
        """The boundary (int64 ns) of the seasonal fit a forecast from `state` reads, the fit of
        its first step; None for models that read no fits and states with no readings yet."""
        if not self.needs_seasonal or state.last_ns is None:
            return None
        first = state.last_ns + self.step_size.value
        return int(self.fit_boundaries(np.array([first]))[0])

    def advance(
        self,
        values: np.ndarray,
        timestamps: pd.DatetimeIndex,
        state: S,
        *,
        seasonal: SeasonalSource | None = None,
        network_covariates: CovariateTrack | None = None,
    ) -> tuple[S, np.ndarray]:
        """`warm`, also returning the one-step forecast made after each reading (NaN if none).

        Live accuracy judges each reading against the forecast made just before it, so a batch
        of readings needs every intermediate forecast. Contiguous readings with no gaps take one
        vectorised pass through the network; anything else goes a reading at a time. A stream
        network that reads covariates reads them from `network_covariates`.
        """
        new_state, means = self._advance(values, timestamps, _typed(state), seasonal, network_covariates)
        return _as_given(new_state, state), means

    def _advance(
        self,
        values: np.ndarray,
        timestamps: pd.DatetimeIndex,
        state: State,
        seasonal: SeasonalSource | None,
        track: CovariateTrack | None = None,
    ) -> tuple[State, np.ndarray]:
        values = np.asarray(values, dtype=np.float64)
        timestamps = pd.DatetimeIndex(timestamps)
        self._check_grid(values, timestamps, state)
        contiguous = (
            len(values) > 0
            and not np.isnan(values).any()
            and (
                state.last_ns is None or timestamps[0] == pd.Timestamp(state.last_ns) + self.offset
            )
        )
        if contiguous and isinstance(state, StreamState):
            states, means = self._step_run(
                [state], values[None], timestamps.asi8[None], [seasonal], [track]
            )
            return states[0], means[0]
        if (
            contiguous
            and isinstance(state, WindowState)
            and len(state.values) + len(values) >= self.spec.window
        ):
            return self._advance_window(values, timestamps, state, self._window_fitter(seasonal))
        means = np.full(len(values), np.nan)
        for i in range(len(values)):
            state = self._warm(values[i : i + 1], timestamps[i : i + 1], state, seasonal, track)
            if self._can_forecast(state):
                means[i] = self.rollout(state, 1, seasonal=seasonal, network_covariates=track)[0]
        return state, means

    def step_streams(
        self,
        states: Sequence[S],
        values: np.ndarray,
        timestamps_ns: np.ndarray,
        sources: Sequence[SeasonalSource | None],
        tracks: Sequence[CovariateTrack | None] | None = None,
    ) -> tuple[list[S], np.ndarray]:
        """Advance many streams of this stream model by one reading each, in one network pass.

        Each reading must be present and directly follow its state's last one (`advance`
        handles everything else, a stream at a time). Every stream has its own state and
        seasonal source (and, for a network that reads covariates, its covariate track); the B
        states are stacked so the step is one matrix product per gate.
        Returns the new states and each stream's one-step forecast after its reading: the batched
        step `advance` takes for one stream, so the two agree.
        """
        ns = np.asarray(timestamps_ns, dtype=np.int64)[:, None]
        typed = [_stream_typed(state) for state in states]
        new_states, means = self._step_run(
            typed, np.asarray(values, dtype=np.float64)[:, None], ns, sources, tracks
        )
        return [_as_given(new, given) for new, given in zip(new_states, states, strict=True)], means[:, 0]

    def _step_run(
        self,
        states: Sequence[StreamState],
        values: np.ndarray,
        ns: np.ndarray,
        sources: Sequence[SeasonalSource | None],
        tracks: Sequence[CovariateTrack | None] | None = None,
    ) -> tuple[list[StreamState], np.ndarray]:
        """`_run_streams`, also returning the one-step forecast after each reading (B, T)."""
        new_states, outputs = self._run_streams(states, values, ns, sources, tracks)
        _, ahead_bounds = self.step_fit_boundaries(ns)
        here, following = self._seasonal(sources, ns, ahead_bounds, (0, 1))
        scales = np.array([self.scales[state.series] for state in new_states])[:, None]
        return new_states, _forecast_value(values, following - here, scales, outputs[:, :, 0])

    def _run_streams(
        self,
        states: Sequence[StreamState],
        values: np.ndarray,
        ns: np.ndarray,
        sources: Sequence[SeasonalSource | None],
        tracks: Sequence[CovariateTrack | None] | None = None,
    ) -> tuple[list[StreamState], np.ndarray]:
        """The batched step: B streams, each fed T present readings (B, T) at `ns` (int64 ns)
        that follow its state's last one, in one network pass. The new states and the network's
        outputs after each reading (B, T, out). A network that reads covariates reads each
        stream's `tracks`: each reading's covariates at its time, and the horizon's after it for
        the forecast the step makes.

        A fleet's post steps many streams a reading each, a warm-up one stream over many; both
        take this pass, so they agree bit for bit. Every stream has its own state and seasonal
        source; the states are stacked so a step is one matrix product per gate.
        """
        (seasonal,) = self._seasonal(sources, ns, self.fit_boundaries(ns), (0,))
        scales = np.array([self.scales[state.series] for state in states])[:, None]
        z = values - seasonal
        first = np.array([z[i, 0] if s.last_z is None else s.last_z for i, s in enumerate(states)])
        previous = np.concatenate([first[:, None], z[:, :-1]], axis=1)
        # As `change_inputs` computes it, z/scale - previous/scale, so training and serving agree.
        change = z / scales - previous / scales
        known = calendar(ns.reshape(-1), self.features).reshape(*ns.shape, -1)
        future = None
        if self.reads_covariates_in_network:
            given = [self._required_track(track) for track in (tracks or [None] * len(states))]
            at_steps = np.stack([t.at(row) for t, row in zip(given, ns, strict=True)])
            known = np.concatenate([known, at_steps], axis=2)
            future = np.stack([self._stream_future(t, row) for t, row in zip(given, ns, strict=True)])
        x = np.concatenate([change[:, :, None], known], axis=2)
        # Each state holds (1, units) per layer: one concatenation per layer for all streams.
        layers = range(len(self.network.state_units))
        stacked = [np.concatenate([state.network[layer] for state in states]) for layer in layers]
        y, net = self.network.run(x, stacked, return_sequences=True, future=future)
        last_values, last_z, last_ns = values[:, -1].tolist(), z[:, -1].tolist(), ns[:, -1].tolist()
        steps = ns.shape[1]
        new_states = [
            StreamState(
                series=state.series,
                network=tuple(array[i : i + 1] for array in net),
                last_value=last_values[i],
                last_z=last_z[i],
                last_ns=last_ns[i],
                readings=state.readings + steps,
            )
            for i, state in enumerate(states)
        ]
        return new_states, np.asarray(y, dtype=np.float64)

    def _required_track(self, track: CovariateTrack | None) -> CovariateTrack:
        if track is None:
            raise ValueError(
                f"This model's network reads covariates {list(self.features.network_covariates)}; "
                "pass their values (`covariate_track`)."
            )
        return track

    def _stream_future(self, track: CovariateTrack, ns: np.ndarray) -> np.ndarray:
        """The future branch's inputs after each of the stream steps `ns` (T, horizon * 2K): the
        covariate columns of the `horizon` steps after each, as `features.every_future` lays
        them out for training."""
        ahead = ns[:, None] + self.step_size.value * np.arange(1, self.features.horizon + 1, dtype=np.int64)
        return track.at(ahead.reshape(-1)).reshape(len(ns), self.features.n_future)

    def _seasonal(
        self,
        sources: Sequence[SeasonalSource | None],
        ns: np.ndarray,
        bounds: np.ndarray,
        shifts: tuple[int, ...],
    ) -> list[np.ndarray]:
        """Per shift, each stream's seasonal component `shift` steps after each of its readings
        (B, T), from the fit of the reading's boundary in `bounds`; zeros for raw models."""
        out = [np.zeros(ns.shape) for _ in shifts]
        if not self.features.deseasonalized:
            return out
        offsets = ((ns - bounds) // self.step_size.value).tolist()
        for i, (source, row_bounds) in enumerate(zip(sources, bounds.tolist(), strict=True)):
            if source is None:
                raise TypeError("A deseasonalised stream model needs a `seasonal` source of fits.")
            if len(row_bounds) == 1:
                # Plain Python: numpy's per-call overhead would cost more than a fleet's lookups.
                fit = source.cycles(row_bounds[0])
                for values, shift in zip(out, shifts, strict=True):
                    values[i, 0] = fit.value_at(offsets[i][0] + shift)
                continue
            row = np.asarray(row_bounds)
            steps = np.asarray(offsets[i])
            for bound in dict.fromkeys(row_bounds):
                mine = row == bound
                fit = source.cycles(bound)
                for values, shift in zip(out, shifts, strict=True):
                    values[i, mine] = fit.at(steps[mine] + shift)
        return out

    def _can_forecast(self, state: State) -> bool:
        if state.last_ns is None:
            return False
        return isinstance(state, StreamState) or len(state.values) >= self.spec.window

    def _window_fitter(self, seasonal: SeasonalSource | None) -> SeasonalFitter | PathFitter | None:
        """What a window model deseasonalises with: its MSTL fitter, or a profile model's path."""
        if not self.features.profile:
            return self.fitter
        if not isinstance(seasonal, ProfileSource):
            raise TypeError("A profile model needs its `seasonal` source: see `profile_source`.")
        return PathFitter(seasonal)

    def _advance_window(
        self,
        values: np.ndarray,
        timestamps: pd.DatetimeIndex,
        state: WindowState,
        fitter: SeasonalFitter | PathFitter | None,
        track: CovariateTrack | None = None,
    ) -> tuple[WindowState, np.ndarray]:
        scale = self.scales[state.series]
        kept = state.values
        combined = np.concatenate([kept, values])
        stamps = pd.date_range(end=timestamps[-1], periods=len(combined), freq=self.offset)
        ends = np.arange(len(kept), len(combined))
        ends = ends[ends >= self.spec.window - 1]
        means = np.full(len(values), np.nan)
        if len(ends) and (fitter is not None or track is not None):
            for end in ends.tolist():
                history = combined[max(0, end + 1 - self.context_steps) : end + 1]
                forecast = self._predict_window(history, stamps[end], state.series, fitter, track)
                means[end - len(kept)] = forecast[0]
        elif len(ends):
            x, _ = window_batch(
                combined / scale, calendar(stamps, self.features), ends, self.features, targets=False
            )
            y, _ = self.network.run(x)
            means[ends - len(kept)] = to_values(y[:, :1], combined[ends], scale)[:, 0]
        new_state = WindowState(
            series=state.series,
            values=combined[-self.context_steps :],
            last_ns=int(timestamps[-1].value),
            readings=state.readings + len(values),
        )
        return new_state, means

    # -- internals ------------------------------------------------------------------------

    def _series(self, series: str | None) -> str:
        if series is None:
            if len(self.scales) == 1:
                return next(iter(self.scales))
            raise ValueError(
                f"This model was trained on several series ({sorted(self.scales)}); pass "
                "`series` to say which one the readings belong to."
            )
        if series not in self.scales:
            raise ValueError(
                f"Received an invalid value for argument `series`, expected one of "
                f"{sorted(self.scales)}, got {series!r}."
            )
        return series

    def _check_kind(self, state: State) -> None:
        if isinstance(state, StreamState) != self.is_stream:
            raise ValueError(
                f"Received a {'stream' if isinstance(state, StreamState) else 'window'} model's state, "
                f"expected a {'stream' if self.is_stream else 'window'} model's."
            )

    def _check_grid(self, values: np.ndarray, timestamps: pd.DatetimeIndex, state: State) -> None:
        self._check_kind(state)
        if values.ndim != 1 or len(values) != len(timestamps):
            raise ValueError(
                f"Received {values.shape} values and {len(timestamps)} timestamps, expected one "
                "timestamp per value."
            )
        if len(timestamps) > 1:
            expected = pd.date_range(timestamps[0], periods=len(timestamps), freq=self.offset)
            if not timestamps.equals(expected):
                raise ValueError(
                    f"Received timestamps that are not on a regular {self.spec.freq} grid; "
                    "expected one per step, with NaN values for missing readings."
                )
        if len(timestamps) and state.last_ns is not None and timestamps[0] <= pd.Timestamp(state.last_ns):
            raise ValueError(
                f"Received a reading at {timestamps[0].isoformat()}, expected one after the "
                f"stream's last reading at {pd.Timestamp(state.last_ns).isoformat()}."
            )

    def _missing_steps(self, state: State, ts: pd.Timestamp) -> pd.DatetimeIndex:
        if state.last_ns is None:
            return pd.DatetimeIndex([])
        start = pd.Timestamp(state.last_ns) + self.offset
        count = steps_between(start, ts, self.offset)
        missing = pd.date_range(start, periods=max(count, 0), freq=self.offset)
        if len(missing) > MAX_IMPUTED_STEPS:
            raise ValueError(
                f"Received a reading {len(missing)} steps after the stream's last one, expected at "
                f"most {MAX_IMPUTED_STEPS}; warm a fresh state from recent history instead."
            )
        return missing

    def _fill_to(
        self,
        state: Kind,
        ts: pd.Timestamp,
        source: SeasonalSource | None = None,
        track: CovariateTrack | None = None,
    ) -> Kind:
        """Fill the grid between the state's last reading and `ts` with missing readings."""
        missing = self._missing_steps(state, ts)
        if len(missing) == 0:
            return state
        return cast(Kind, self._warm(np.full(len(missing), np.nan), missing, state, source, track))

    @functools.cached_property
    def step_size(self) -> pd.Timedelta:
        return fixed_step(self.offset)

    def _source(self, seasonal: SeasonalSource | None) -> SeasonalSource:
        if not self.features.deseasonalized:
            return NO_SEASON
        if seasonal is None:
            raise TypeError("A deseasonalised stream model needs a `seasonal` source of fits.")
        return seasonal

    def _roll_stream(
        self, state: StreamState, horizon: int, source: SeasonalSource, track: CovariateTrack | None = None
    ) -> np.ndarray:
        """Heads of forecasts, each fed back as readings, until `horizon` steps are covered.

        Readings fed back are deseasonalised with the fit of the first forecast step, extended:
        a later day's fit would read readings that do not exist yet. The rollout is what
        `_run_streams` would compute block by block, with the seasonal path
        and the calendar inputs' projection computed once; a step is then the cell's own work
        (a horizon-1 model steps 96 times for a two-day forecast). The arithmetic around the
        network is on Python floats: numpy's per-call overhead on one-element arrays would cost
        more than the network step, and the floats round exactly as float64 arrays do.
        """
        if state.last_ns is None or state.last_value is None:
            raise ValueError("The stream has no readings yet; warm it with history first.")
        if self.reads_covariates_in_network:
            return self._roll_stream_run(state, horizon, source, self._required_track(track))
        scale = self.scales[state.series]
        step_ns = self.step_size.value
        last_ns = state.last_ns
        head = self.network.output_size
        steps = -(-horizon // head) * head
        future = last_ns + step_ns * np.arange(1, steps + 1, dtype=np.int64)
        first = int(self.fit_boundaries(future[:1])[0])
        # seasonal[j]: the frozen fit's component j steps after the last reading (j = 0: at it).
        seasonal = source.cycles(first).at((np.concatenate([[last_ns], future]) - first) // step_ns).tolist()
        # The steps of the last head are never fed back: their inputs are not needed.
        known = calendar(future[: steps - head], self.features)
        stepper = self.network.stepper(list(state.network), known)
        last_value, last_z = state.last_value, state.last_z
        mean: list[float] = []
        done = 0
        while True:
            origin = seasonal[done]
            outputs = stepper.output().tolist()
            mean += [
                _forecast_value(last_value, seasonal[done + 1 + j] - origin, scale, out)
                for j, out in enumerate(outputs)
            ]
            if done + head >= horizon:
                return np.array(mean[:horizon], dtype=np.float64)
            for k in range(done, done + head):
                z = mean[k] - seasonal[k + 1]
                # As `change_inputs` computes it: 0 for a stream's first reading.
                previous = z if last_z is None else last_z
                stepper.step(z / scale - previous / scale)
                last_z = z
            last_value = mean[done + head - 1]
            done += head

    def _roll_stream_run(
        self, state: StreamState, horizon: int, source: SeasonalSource, track: CovariateTrack
    ) -> np.ndarray:
        """`_roll_stream` for a network with a future branch, which `Stepper` cannot step: each
        head reads the horizon's covariates after its origin from `track`, and is fed back a
        block at a time through `network.run` with the covariates at those steps."""
        assert state.last_ns is not None and state.last_value is not None
        scale = self.scales[state.series]
        step_ns = self.step_size.value
        head = self.network.output_size
        steps = -(-horizon // head) * head
        future = state.last_ns + step_ns * np.arange(1, steps + 1, dtype=np.int64)
        first = int(self.fit_boundaries(future[:1])[0])
        ns = np.concatenate([[state.last_ns], future])
        seasonal = source.cycles(first).at((ns - first) // step_ns)
        network, last_value, last_z = list(state.network), state.last_value, state.last_z
        mean = np.zeros(0)
        done = 0
        while True:
            ahead = self._stream_future(track, ns[done : done + 1])
            out = np.asarray(self.network.output(network, ahead)[0], dtype=np.float64)
            ahead_change = seasonal[done + 1 : done + 1 + head] - seasonal[done]
            block = _forecast_value(last_value, ahead_change, scale, out)
            mean = np.concatenate([mean, block])
            if done + head >= horizon:
                return mean[:horizon]
            z = block - seasonal[done + 1 : done + 1 + head]
            previous = np.concatenate([[z[0] if last_z is None else last_z], z[:-1]])
            block_ns = future[done : done + head]
            change = (z / scale - previous / scale)[:, None]
            x = np.concatenate([change, calendar(block_ns, self.features), track.at(block_ns)], axis=1)
            _, network = self.network.run(
                x[None], network, return_sequences=True, future=self._stream_future(track, block_ns)[None]
            )
            last_value, last_z = float(block[-1]), float(z[-1])
            done += head

    def _warm_window(
        self,
        values: np.ndarray,
        timestamps: pd.DatetimeIndex,
        state: WindowState,
        fitter: SeasonalFitter | PathFitter | None,
        track: CovariateTrack | None = None,
    ) -> WindowState:
        missing = self._missing_steps(state, timestamps[0])
        if len(missing):
            state = self._warm_window(np.full(len(missing), np.nan), missing, state, fitter, track)
        size = self.spec.window
        combined = np.concatenate([state.values, values])
        tail = max(0, len(combined) - self.context_steps)
        # Gaps too long to interpolate are filled with forecasts, as a stream model fills them;
        # only the readings that stay in the held history matter. A masked model (closed hours)
        # reads missing readings as missing.
        gaps = np.flatnonzero(np.isnan(combined[tail:])) + tail
        if self.features.masked:
            gaps = gaps[:0]
        for i in gaps:
            history = combined[max(0, i - self.context_steps) : i]
            if len(history) < size or np.isnan(history[-size:]).any():
                raise ValueError(
                    f"Cannot fill a missing reading without the {size} readings before it; "
                    f"expected the last {size} readings with gaps of at most a few steps."
                )
            history_end = timestamps[-1] - self.offset * (len(combined) - i)
            combined[i] = self._predict_window(history, history_end, state.series, fitter, track)[0]
        return WindowState(
            series=state.series,
            values=combined[tail:],
            last_ns=int(timestamps[-1].value),
            readings=state.readings + len(values),
        )

    def _predict_window(
        self,
        history: np.ndarray,
        last_ts: pd.Timestamp,
        series: str,
        fitter: SeasonalFitter | PathFitter | None,
        track: CovariateTrack | None = None,
    ) -> np.ndarray:
        """One head of forecasts (original units) after `history` (at least a window) ending at
        `last_ts`; a network that reads covariates reads them from `track`."""
        scale = self.scales[series]
        timestamps = pd.date_range(end=last_ts, periods=len(history), freq=self.offset)
        steps = calendar(timestamps, self.features)
        future = None
        if self.reads_covariates_in_network:
            if track is None:
                raise ValueError(
                    f"This model's network reads covariates {list(self.features.network_covariates)}; "
                    "pass their values (`covariate_track`)."
                )
            ahead = pd.date_range(last_ts + self.offset, periods=self.spec.horizon, freq=self.offset)
            steps = np.concatenate([steps, track.at(timestamps.asi8)], axis=1)
            future = track.at(ahead.asi8).reshape(1, -1)
        x, base = origin_batch(
            history,
            steps,
            timestamps,
            np.array([len(history) - 1]),
            scale,
            self.features,
            fitter,
        )
        y, _ = self.network.run(x, future=future)
        return np.asarray(base[0] + scale * np.asarray(y[0], dtype=np.float64), dtype=np.float64)

    def _roll_window(
        self,
        state: WindowState,
        horizon: int,
        fitter: SeasonalFitter | PathFitter | None,
        track: CovariateTrack | None = None,
    ) -> np.ndarray:
        history = state.values
        if len(history) < self.spec.window:
            raise ValueError(
                f"The model needs the last {self.spec.window} readings to forecast, got {len(history)}."
            )
        last_ts = pd.Timestamp(state.last_ns)
        mean = np.zeros(0)
        while len(mean) < horizon:
            block = self._predict_window(history, last_ts, state.series, fitter, track)
            mean = np.concatenate([mean, block])
            history = np.concatenate([history, block])[-self.context_steps :]
            last_ts = last_ts + self.offset * len(block)
        return mean[:horizon]

    def _widths(self, level: int, horizon: int) -> np.ndarray:
        """Interval half-widths per step, in units of the series' scale.

        Beyond the head the rollout compounds its own errors, which conformal calibration never
        saw; the last calibrated width grows with the square root of the number of head lengths
        ahead, as the spread of a sum of independent errors would. This is a heuristic, not a
        coverage guarantee.
        """
        q = self.quantiles[level]
        head = len(q)
        steps = np.arange(1, horizon + 1)
        beyond = q[-1] * np.sqrt(steps / head)
        return np.asarray(np.where(steps <= head, q[np.minimum(steps, head) - 1], beyond), dtype=np.float64)


def _forecast_value(last: Any, ahead: Any, scale: Any, output: Any) -> Any:
    """A stream's forecast from its last reading: the seasonal change to the step ahead plus the
    network's scaled output (floats or arrays alike, rounded the same)."""
    return last + ahead + scale * output


def _typed(state: State | Mapping[str, Any]) -> State:
    return state if isinstance(state, StreamState | WindowState) else from_json(state)


def _stream_typed(state: State | Mapping[str, Any]) -> StreamState:
    typed = _typed(state)
    if not isinstance(typed, StreamState):
        raise ValueError("Received a window model's state, expected a stream model's.")
    return typed


def _as_given(state: State, given: S) -> S:
    """`state` in the form the caller gave one: typed, or its JSON form."""
    return cast(S, state if isinstance(given, StreamState | WindowState) else to_json(state))

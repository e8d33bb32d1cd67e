"""Series from a table, and the training windows a global forecaster learns from.

A table in long form (one row per series and time step: the time column, the target, the
``--series`` columns, covariates) becomes a :class:`Panel`: per series a regular time index
(the frequency given or inferred), the target, and its covariates. Missing timestamps are
inserted and their targets interpolated (counted in :attr:`Panel.report`); series of
different lengths (ragged) are kept, each giving the windows it can.

Covariates are sorted by what is known when: a column constant within every series is
**static** (a store's type); a column named by ``--past-covariates`` is **past-only** (known
up to the forecast's start); every other numeric or boolean column is **known ahead**
(announced promotions: ``predict`` needs it in the future rows). Calendar features of the
frequency (month, weekday, hour as sine and cosine) are added to the known-ahead ones.

A **window** at origin ``t`` of a series reads its ``lookback`` values before ``t`` (the
lags), the covariates over the lookback and the horizon, and its static row; its target is
the ``horizon`` values from ``t``. Each window is scaled by its own lookback's mean and
standard deviation, so series of any level share one network.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from deepstrata.data.table import Table
from deepstrata.errors import ConfigError, DataError

SEASONS = {"h": 24, "D": 7, "B": 5, "W": 52, "M": 12, "Q": 4, "Y": 1, "A": 1, "min": 60}
MAX_STATIC_CATEGORIES = 50


def season_length(frequency: str) -> int:
    """The seasonal period of a pandas frequency: 12 for months, 7 for days, 24 for hours."""
    code = pd.tseries.frequencies.to_offset(frequency).rule_code.split("-")[0]
    for prefix in ("min", "h", "B", "D", "W", "M", "Q", "Y", "A"):
        if code.upper().startswith(prefix.upper()) or code.startswith(prefix):
            return SEASONS[prefix]
    return 1


def calendar(times: pd.DatetimeIndex, frequency: str) -> np.ndarray:
    """``(T, C)`` sine and cosine of the cycles finer than a year that ``frequency`` shows
    (month of year for months and finer, weekday for days and finer, hour for hours)."""
    period = season_length(frequency)
    columns = []
    if period not in (1, 4):
        columns.append(2 * np.pi * (times.month.to_numpy() - 1) / 12)
    if period in (5, 7, 24, 60):
        columns.append(2 * np.pi * times.day_of_week.to_numpy() / 7)
    if period in (24, 60):
        columns.append(2 * np.pi * times.hour.to_numpy() / 24)
    if not columns:
        return np.zeros((len(times), 0))
    angles = np.stack(columns, axis=1)
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


@dataclass
class Spec:
    """What the table said and the fit chose: kept in the bundle, read again by predict."""

    target: str
    time: str
    series: list[str]
    frequency: str
    horizon: int
    lookback: int
    known: list[str] = field(default_factory=list)
    past: list[str] = field(default_factory=list)
    static: dict[str, list[str]] = field(default_factory=dict)  # column -> categories
    covariate_mean: dict[str, float] = field(default_factory=dict)
    covariate_std: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict) -> Spec:
        return cls(**data)

    @property
    def season(self) -> int:
        return season_length(self.frequency)


@dataclass
class Series:
    key: tuple
    times: pd.DatetimeIndex
    values: np.ndarray  # (T,) float64, missing timestamps interpolated
    known: np.ndarray  # (T, Ck) known-ahead covariates, standardised
    past: np.ndarray  # (T, Cp)
    static: np.ndarray  # (S,)


@dataclass
class Panel:
    series: list[Series]
    report: dict


def parse_times(table: Table, column: str) -> pd.Series:
    """The time column as timestamps; a value that does not parse fails naming its line."""
    if column not in table.frame.columns:
        raise ConfigError(
            f"no column {column!r} in {table.source}; columns: {', '.join(map(str, table.frame.columns))}",
            option="--time",
        )
    raw = table.frame[column]
    missing = raw.isna().to_numpy()
    if missing.any():
        raise table.error("the time is missing", column=column, position=int(np.argmax(missing)))
    parsed = pd.to_datetime(raw.astype(str), errors="coerce", format="mixed")
    bad = parsed.isna().to_numpy()
    if bad.any():
        position = int(np.argmax(bad))
        raise table.error(
            f"{raw.iloc[position]!r} is not a date or time",
            column=column,
            position=position,
            hint="write times as 2024-01-31 or 2024-01-31 13:00",
        )
    return parsed


def _keys(frame: pd.DataFrame, series: list[str]) -> pd.Series:
    if not series:
        return pd.Series([()] * len(frame), index=frame.index, dtype=object)
    return pd.Series(
        list(zip(*(frame[c].astype(str) for c in series), strict=True)), index=frame.index
    )


def check_unique(table: Table, times: pd.Series, keys: pd.Series, spec_time: str) -> None:
    """A DataError naming the second row of the first series and time seen twice."""
    frame = pd.DataFrame({"key": keys, "time": times})
    duplicated = frame.duplicated(keep="first").to_numpy()
    if duplicated.any():
        position = int(np.argmax(duplicated))
        key = keys.iloc[position]
        named = f" of series {', '.join(key)}" if key else ""
        raise table.error(
            f"the time {times.iloc[position]} appears twice{named}",
            column=spec_time,
            position=position,
            hint="one row per series and time step; aggregate duplicates first",
        )


def infer_frequency(times: pd.Series, keys: pd.Series, source: str) -> str:
    """The frequency the longest series' timestamps keep (most common step when some are
    missing); a ConfigError asking for --frequency when there is none."""
    longest = keys.value_counts().index[0]
    stamps = pd.DatetimeIndex(times[keys == longest].sort_values())
    frequency = None
    if len(stamps) >= 3:
        with warnings.catch_warnings():  # pandas 3 warns that an offset will come back
            warnings.simplefilter("ignore")
            frequency = pd.infer_freq(stamps)
        frequency = getattr(frequency, "freqstr", frequency)
    if frequency is None and len(stamps) >= 3:
        step = pd.Series(stamps[1:] - stamps[:-1]).mode().iloc[0]
        for candidate in ("MS", "ME", "QS", "YS", "W", "D", "h", "min"):
            ahead = stamps[:-1] + pd.tseries.frequencies.to_offset(candidate)
            if (ahead == stamps[1:]).mean() > 0.8 or (
                candidate in ("D", "h", "min") and step == pd.Timedelta(1, candidate)
            ):
                frequency = candidate
                break
    if frequency is None:
        raise ConfigError(
            f"the timestamps in {source} keep no regular step; give one, e.g. --frequency D",
            option="--frequency",
        )
    return frequency


def describe_covariates(
    table: Table, *, target: str, time: str, series: list[str], past: list[str], ignore: list[str]
) -> tuple[list[str], list[str], dict[str, list[str]]]:
    """(known-ahead, past-only, static with their categories) among the other columns."""
    frame, keys = table.frame, _keys(table.frame, series)
    for name in [target, *series, *past]:
        if name not in frame.columns:
            option = (
                "--target"
                if name == target
                else "--series"
                if name in series
                else "--past-covariates"
            )
            raise ConfigError(f"no column {name!r} in {table.source}", option=option)
    known, static = [], {}
    for name in frame.columns:
        if name in (target, time, *series, *past, *ignore):
            continue
        column = frame[name]
        constant = column.groupby(keys.map(str)).nunique(dropna=False).max() <= 1
        if constant and series:
            categories = sorted(column.astype(str).unique().tolist())
            if len(categories) <= MAX_STATIC_CATEGORIES:
                static[name] = categories
            continue
        if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
            known.append(name)
            continue
        raise table.error(
            "a covariate that changes over time must be a number or a boolean",
            column=name,
            hint=f"encode it as numbers, or leave it out with --ignore {name}",
        )
    for name in past:
        if not (
            pd.api.types.is_numeric_dtype(frame[name]) or pd.api.types.is_bool_dtype(frame[name])
        ):
            raise table.error("a past covariate must be a number or a boolean", column=name)
    return known, list(past), static


def target_values(table: Table, target: str, rows: np.ndarray | None = None) -> np.ndarray:
    """The target as float64 (NaN where missing); text that is no number fails naming it."""
    values = pd.to_numeric(table.frame[target], errors="coerce")
    bad = (values.isna() & table.frame[target].notna()).to_numpy()
    if bad.any():
        position = int(np.argmax(bad))
        raise table.error(
            f"expected a number, got {table.frame[target].iloc[position]!r}",
            column=target,
            position=position,
        )
    return values.to_numpy(np.float64)


def read_panel(table: Table, spec: Spec, *, fill_future: bool = False) -> Panel:
    """The series of ``table`` on the regular grid of ``spec.frequency``.

    Missing timestamps inside a series get interpolated targets and carried covariates;
    ``fill_future`` (predict) keeps rows after the last target as the known-ahead rows."""
    times = parse_times(table, spec.time)
    keys = _keys(table.frame, spec.series)
    check_unique(table, times, keys, spec.time)
    values = target_values(table, spec.target)
    frame = table.frame.assign(_time=times.to_numpy(), _key=keys.to_numpy(), _y=values)
    offset = pd.tseries.frequencies.to_offset(spec.frequency)
    series, inserted, lengths = [], 0, {}
    for key, group in frame.groupby("_key", sort=True):
        group = group.sort_values("_time").set_index("_time")
        observed = group["_y"].notna().to_numpy()
        if not observed.any():
            continue
        grid = pd.date_range(group.index[0], group.index[-1], freq=offset)
        if len(grid) == 0 or not group.index.isin(grid).all():
            off = group.index[~group.index.isin(grid)][0] if len(grid) else group.index[0]
            raise DataError(
                f"the time {off} is off the {spec.frequency} grid of its series",
                file=table.source,
                column=spec.time,
                hint="give the --frequency the timestamps keep",
            )
        regular = group.reindex(grid)
        inserted += len(grid) - len(group)
        y = regular["_y"]
        last = y.last_valid_index()
        if not fill_future:
            regular = regular.loc[:last]
        y = y.loc[:last].interpolate(limit_area="inside").bfill()
        known = _standardised(regular, spec.known, spec).ffill().bfill().fillna(0.0)
        past = _standardised(regular, spec.past, spec).ffill().bfill().fillna(0.0)
        static = _static_row(group.iloc[0], spec.static)
        series.append(
            Series(
                key if isinstance(key, tuple) else (key,),
                grid[: len(y)],
                y.to_numpy(np.float64),
                known.to_numpy(np.float64),
                past.to_numpy(np.float64),
                static,
            )
        )
        lengths[", ".join(key) or "series"] = int(y.notna().sum())
    report = {
        "series": len(series),
        "inserted_timestamps": int(inserted),
        "shortest": min(lengths.values(), default=0),
        "longest": max(lengths.values(), default=0),
        "ragged": len(set(lengths.values())) > 1,
    }
    return Panel(series, report)


def _standardised(frame: pd.DataFrame, columns: list[str], spec: Spec) -> pd.DataFrame:
    out = pd.DataFrame(index=frame.index)
    for name in columns:
        column = pd.to_numeric(frame[name].astype(float), errors="coerce")
        out[name] = (column - spec.covariate_mean.get(name, 0.0)) / spec.covariate_std.get(
            name, 1.0
        )
    return out


def _static_row(row: pd.Series, static: dict[str, list[str]]) -> np.ndarray:
    parts = [
        (np.asarray(categories) == str(row[name])).astype(np.float64)
        for name, categories in static.items()
    ]
    return np.concatenate(parts) if parts else np.zeros(0)


def fit_covariate_scales(table: Table, spec: Spec) -> None:
    """Each known-ahead and past covariate's mean and std over the training rows."""
    for name in [*spec.known, *spec.past]:
        column = table.frame[name].astype(float)
        spec.covariate_mean[name] = float(column.mean())
        spec.covariate_std[name] = float(column.std()) or 1.0


# -- windows -------------------------------------------------------------------------------


def window_inputs(series: Series, origin: int, spec: Spec) -> dict[str, np.ndarray]:
    """One window's inputs at ``origin`` (the index of the first step forecast), scaled by
    its lookback: ``history (L,)``, ``covariates (L+H, C)``, ``past (L, Cp)``, ``static
    (S,)``, and its ``location`` and ``scale``. The series must reach ``origin + H`` in its
    covariates (its times and known-ahead rows)."""
    lookback, horizon = spec.lookback, spec.horizon
    start = origin - lookback  # before the series' first value on a short one: padded
    history = _rows(series.values[:, None], start, lookback)[:, 0]
    location, scale = history.mean(), history.std()
    scale = scale + 1e-3 * abs(location) + 1e-8  # a flat window must not blow up
    offset = pd.tseries.frequencies.to_offset(spec.frequency)
    times = pd.date_range(series.times[0] + start * offset, periods=lookback + horizon, freq=offset)
    position = np.linspace(-1, 1, lookback + horizon)[:, None]  # where in the window a step is
    covariates = np.concatenate(
        [position, calendar(times, spec.frequency), _rows(series.known, start, lookback + horizon)],
        axis=1,
    )
    return {
        "history": (history - location) / scale,
        "covariates": covariates,
        "past": _rows(series.past, start, lookback),
        "static": series.static,
        "location": np.float64(location),
        "scale": np.float64(scale),
    }


def _rows(block: np.ndarray, start: int, count: int) -> np.ndarray:
    """``count`` rows of ``block`` from ``start``; the first row repeats before the block's
    start (a short series' lookback) and the last past its end (known-ahead rows not given)."""
    index = np.clip(np.arange(start, start + count), 0, len(block) - 1)
    return block[index] if len(block) else np.zeros((count, block.shape[1]))


def stack(windows: list[dict], targets: list[np.ndarray] | None = None):
    """Windows -> the network's input dict of float32 tensors (and scaled targets)."""
    import torch

    inputs = {
        name: torch.from_numpy(np.stack([w[name] for w in windows]).astype(np.float32))
        for name in ("history", "covariates", "past", "static")
    }
    if targets is None:
        return inputs
    scaled = [(y - w["location"]) / w["scale"] for w, y in zip(windows, targets, strict=True)]
    return inputs, torch.from_numpy(np.stack(scaled).astype(np.float32))


def training_windows(
    panel: Panel, spec: Spec, *, end: list[int] | None = None, limit: int = 20000, seed: int = 0
) -> tuple[list[dict], list[np.ndarray], list[dict], list[np.ndarray]]:
    """(train windows, their targets, validation windows, their targets) from each series
    up to ``end[i]`` steps (its whole length by default). The validation windows' targets
    are the last two horizons of each series; the training windows' end before them.
    At most ``limit`` training windows, a random choice of origins past that."""
    lookback, horizon = spec.lookback, spec.horizon
    train, train_y, valid, valid_y = [], [], [], []
    origins = []
    for index, series in enumerate(panel.series):
        length = len(series.values) if end is None else end[index]
        split = length - 2 * horizon
        for origin in range(lookback, split - horizon + 1):
            origins.append((index, origin))
        for origin in range(max(lookback, split), length - horizon + 1):
            valid.append(window_inputs(series, origin, spec))
            valid_y.append(series.values[origin : origin + horizon])
    if len(origins) > limit:
        chosen = np.random.default_rng(seed).choice(len(origins), limit, replace=False)
        origins = [origins[i] for i in sorted(chosen)]
    for index, origin in origins:
        series = panel.series[index]
        train.append(window_inputs(series, origin, spec))
        train_y.append(series.values[origin : origin + horizon])
    return train, train_y, valid, valid_y


MIN_LOOKBACK = 4


def choose_lookback(spec: Spec, longest: int, backtests: int, source: str) -> int:
    """Two seasons or two horizons (at least 8 steps), shortened down to 4 until the longest
    series leaves, before its backtests' cut-offs, two horizons of validation and one of
    training windows; a DataError when not even that fits (the horizon is too long)."""
    wanted = max(2 * spec.season, 2 * spec.horizon, 8)
    room = longest - (backtests + 4) * spec.horizon
    if room < MIN_LOOKBACK:
        raise DataError(
            f"--horizon {spec.horizon} with --backtests {backtests} needs at least "
            f"{(backtests + 4) * spec.horizon + MIN_LOOKBACK} steps in a series (lookback, "
            f"training windows, validation, backtests); the longest series has {longest}",
            file=source,
            column=spec.target,
            hint="lower --horizon or --backtests",
        )
    return int(min(wanted, room))

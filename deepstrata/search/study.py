"""Where a search's trials live: an Optuna study in SQLite (the run directory's
``study.db``, the default), a journal file, or PostgreSQL shared by many workers.

Every relational storage runs with heartbeats: a worker that dies mid-trial stops
beating, and the next worker to ask for a trial marks that trial failed and queues a
retry of the same decisions (:class:`optuna.storages.RetryHeartbeatStaleTrialCallback`), so no
trial is left ``RUNNING`` and the search completes. The budget of ``trials`` is queued
up front (``WAITING`` trials, handed out atomically by the database), so several
workers complete exactly that many trials and never run one twice; a trial asked for
when the queue has just run dry is closed at once as surplus (marked, never run).

URLs are shown with their password masked:

>>> mask("postgresql://search:s3cret@db:5432/studies")
'postgresql://search:***@db:5432/studies'
"""

from __future__ import annotations

import re
from pathlib import Path

from deepstrata.errors import ConfigError, MissingPackageError, StorageError

__all__ = ["STUDY_FILE", "create_study", "load_study", "mask", "open_storage", "storage_url"]

STUDY_FILE = "study.db"
HEARTBEAT_SECONDS = 10
GRACE_SECONDS = 30
RETRIES = 2
SURPLUS = "surplus"  # user attribute of a trial asked for after the budget was handed out
BASELINE = "baseline"  # user attribute of the trial of the default configuration
QUEUED = "queued"  # user attribute of a trial of the budget (queued up front)


def mask(url: str) -> str:
    """``url`` with the password between ``user:`` and ``@`` replaced by ``***``."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", str(url))


def storage_url(storage: str | None, run_dir: Path) -> str:
    """The URL of ``storage``: SQLite in ``run_dir`` when None, ``journal`` for a journal
    file there; ``postgresql://`` gets the psycopg (3) driver."""
    if storage is None:
        return f"sqlite:///{(Path(run_dir) / STUDY_FILE).resolve()}"
    if storage == "journal":
        return f"journal:///{(Path(run_dir) / 'study.journal').resolve()}"
    scheme = storage.split("://", 1)[0]
    if scheme in ("postgresql", "postgres"):
        return "postgresql+psycopg://" + storage.split("://", 1)[1]
    if scheme not in ("sqlite", "journal", "postgresql+psycopg", "mysql+pymysql"):
        raise ConfigError(
            f"expected sqlite:///FILE, journal, or postgresql://USER@HOST/DATABASE, got "
            f"{mask(storage)!r}",
            option="--storage",
        )
    return storage


def open_storage(url: str, *, heartbeat: float = HEARTBEAT_SECONDS, grace: float = GRACE_SECONDS):
    """An Optuna storage for ``url``, connected now: StorageError (the URL masked) when the
    database cannot be reached, MissingPackageError when its driver is not installed."""
    import optuna

    if url.startswith("journal:///"):
        from optuna.storages.journal import JournalFileBackend

        path = Path(url[len("journal:///") - 1 :])
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        engine = {"connect_args": {"timeout": 60}}
    else:
        if url.startswith("postgresql+psycopg"):
            try:
                import psycopg  # noqa: F401
            except ImportError as error:
                raise MissingPackageError(
                    "PostgreSQL studies need psycopg", extra="search"
                ) from error
        # A bounded pool: many workers must not exhaust the server's connections.
        engine = {"pool_size": 2, "max_overflow": 2, "pool_pre_ping": True}
    import warnings

    try:
        with warnings.catch_warnings():  # heartbeats and retries are "experimental" since 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine,
                heartbeat_interval=int(max(1, heartbeat)),
                grace_period=int(max(1, grace)),
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                    max_retry=RETRIES
                ),
            )
    except Exception as error:  # sqlalchemy's errors carry the URL: never show them whole
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        reason = mask(reason.replace(url, mask(url)))
        raise StorageError(f"cannot open the study database: {reason}", url=mask(url)) from None


def create_study(storage, name: str, directions: list[str], attributes: dict, trials: int,
                 first: dict | None = None):  # fmt: skip
    """A new study holding the search's description (``attributes``) and ``trials``
    queued trials, the first with the decisions ``first`` (the default configuration)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(storage=storage, study_name=name, directions=directions)
    except optuna.exceptions.DuplicatedStudyError:
        raise ConfigError(
            f"a study named {name!r} exists in this storage; join it with --worker, "
            "continue it with --resume, or choose another --study",
            option="--study",
        ) from None
    for key, value in attributes.items():
        study.set_user_attr(key, value)
    enqueue(study, trials, first)
    return study


def enqueue(study, trials: int, first: dict | None = None) -> None:
    """Queue ``trials`` trials (the first with the decisions ``first``)."""
    for index in range(trials):
        baseline = index == 0 and first is not None
        attributes = {QUEUED: True, **({BASELINE: True} if baseline else {})}
        study.enqueue_trial(first if baseline else {}, user_attrs=attributes)


def load_study(storage, name: str):
    import optuna

    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise ConfigError(f"no study named {name!r} in this storage", option="--study") from None


def counts(study) -> dict:
    """Trials by state (surplus ones apart)."""
    from optuna.trial import TrialState

    tally = {state.name.lower(): 0 for state in TrialState}
    tally[SURPLUS] = 0
    for trial in study.get_trials(deepcopy=False):
        if trial.user_attrs.get(SURPLUS):
            tally[SURPLUS] += 1
        else:
            tally[trial.state.name.lower()] += 1
    return tally


def waiting(study) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def reclaim(study) -> None:
    """Mark trials whose worker stopped beating failed (and queue their retries)."""
    import warnings

    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # a no-op for storages without heartbeats


def running(study) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))

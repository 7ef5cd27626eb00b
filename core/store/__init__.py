"""The project file: one SQLite database per project, and the only code that speaks SQL to it.

Everything a user produces (datasets, probe results, plans, training runs, metrics) lives in one
file they can copy or mail. Every SQL statement of KnowMix is in this package, so the file
format has one owner and the rest of the code asks questions in its own words:

``schema``    the tables, ``SCHEMA_VERSION`` and the ``MIGRATIONS`` that upgrade older files;
``project``   ``Project``: opening (read-only too), transactions, datasets, examples, probe runs
              and their claims, probe results as the probe writes them;
``results``   read-only views of probe results (the breakdown table, one example, P(T=0) bins);
``plans``     plans and their examples;
``runs``      training runs and their metrics;
``records``   ``ProbeRun`` and ``TrainRun``, the typed rows the reads return, with the words their
              rows hold (statuses, stopping rules, stop reasons) and which adapter a run keeps.

Only this package imports ``sqlite3`` and ``sqlite_utils``. The app (``gui/``) imports only from
here (an import-linter contract in pyproject.toml says so): the reads it needs are named below.
"""

from . import opening, plans, records, results, runs
from .plans import plan_row
from .project import Project, pid_alive
from .records import (
    CANCELLED,
    CONVERGENCE,
    CRASHED,
    CREATED,
    DONE,
    EARLY_STOP,
    FAILED,
    PROBE_CANCELLED,
    PROBE_FAILED,
    PROBE_FINISHED,
    PROBE_RUNNING,
    RUNNING,
    ProbeRun,
    TrainRun,
    stop_reason_words,
)
from .results import example_detail, example_rows, has_results
from .schema import MIGRATIONS, PROJECT_SUFFIX, SCHEMA_VERSION

__all__ = [
    "CANCELLED",
    "CONVERGENCE",
    "CRASHED",
    "CREATED",
    "DONE",
    "EARLY_STOP",
    "FAILED",
    "PROBE_CANCELLED",
    "PROBE_FAILED",
    "PROBE_FINISHED",
    "PROBE_RUNNING",
    "RUNNING",
    "ProbeRun",
    "TrainRun",
    "stop_reason_words",
    "MIGRATIONS",
    "PROJECT_SUFFIX",
    "SCHEMA_VERSION",
    "Project",
    "example_detail",
    "example_rows",
    "has_results",
    "opening",
    "pid_alive",
    "plan_row",
    "plans",
    "records",
    "results",
    "runs",
]

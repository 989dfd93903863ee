"""What config/test.yaml's run makes of the report's declared figures and tables: everything but
the Tuning section's (config/test.yaml tunes nothing: tests/workflow/test_tuning_workflow.py runs
config/tuning-test.yaml for those) and the Reproduction tables that need a published cell (digits
has none) or a method run both with and without a switch of the original implementation."""

from dmlbench.report import tuning
from dmlbench.report.figures import ALL_FIGURES, ALL_TABLES

TUNING_FIGURES = {f.label for f in tuning.FIGURES}
TUNING_TABLES = {t.label for t in tuning.TABLES}
REPRODUCTION_GATED = {"tbl-reproduction", "tbl-reproduction-order", "tbl-reproduction-fixes"}

TEST_RUN_FIGURES = [label for label in ALL_FIGURES if label not in TUNING_FIGURES]
TEST_RUN_TABLES = [label for label in ALL_TABLES if label not in TUNING_TABLES | REPRODUCTION_GATED]

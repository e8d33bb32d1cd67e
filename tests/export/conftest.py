"""The served model's fixtures, shared with the server's tests (an export is served too)."""

from tests.serve.conftest import churn_model, churn_rows  # noqa: F401 - fixtures

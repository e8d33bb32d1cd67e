"""Rules the code keeps, so that the layout stays a map a newcomer can read.

- no module over 500 lines, no function over 80 (the exceptions below, each with its
  reason);
- every module of the package has ``tests/<path>/test_<module>.py``, or is listed below
  with the test file that covers it;
- no ``task == "..."`` comparison outside ``deepstrata/tasks/`` beyond the few listed;
- no import circle between the package's modules (grimp's graph, as import-linter reads
  it; ``make lint`` runs the layers contract itself).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "deepstrata"
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 80

LONG_FILES: dict[str, str] = {}  # none today
LONG_FUNCTIONS: dict[str, str] = {}  # "module:function": why; none today

# A module without a test file of its own -> the test file that covers it (and why).
COVERED_ELSEWHERE = {
    "report/search.py": "tests/search/test_run.py",  # the refit bundle's report section
    "search/objective.py": "tests/search/test_run.py",  # trials of real fits, end to end
    "search/outputs.py": "tests/search/test_run.py",
    "audit/requirements.py": "tests/audit/test_run.py",  # the missing-extra error
    "options/audit.py": "tests/recipes/test_fairness.py",  # the options' rules, via fit
    "options/private.py": "tests/train/test_private.py",  # the rule beside DP-SGD itself
    "report/privacy.py": "tests/train/test_private.py",  # the section beside what it shows
    "cli/privacy.py": "tests/attack/test_membership.py",  # privacy there, steal in extraction's
    "cli/audit.py": "tests/audit/test_run.py",  # the commands beside their engines
    "bundle/format.py": "tests/bundle/test_legacy.py",  # older layouts load: the legacy bundles
    "bundle/manifest.py": "tests/bundle/test_bundle.py",
    "bundle/read.py": "tests/bundle/test_bundle.py",
    "bundle/write.py": "tests/bundle/test_bundle.py",
    "cli/common.py": "tests/cli/test_cli.py",
    "options/spec.py": "tests/test_config.py",  # the specs through the config made of them
    "options/stream.py": "tests/data/test_stream.py",
    "options/explain.py": "tests/cli/test_explain.py",  # fit --explain beside explain's CLI  # the streamed fit reads them
    "options/imbalance.py": "tests/tasks/test_imbalance.py",  # the options beside their work
    "cli/compare.py": "tests/compare/test_run.py",  # the command beside its engine
    "cli/data.py": "tests/cli/test_cli.py",
    "cli/search.py": "tests/search/test_run.py",  # the command beside its engine
    "cli/display.py": "tests/cli/test_cli.py",
    "cli/flags.py": "tests/cli/test_fit.py",
    "cli/predict.py": "tests/cli/test_cli.py",
    "cli/report.py": "tests/report/test_render.py",
    "compare/result.py": "tests/compare/test_run.py",
    "data/sensitive.py": "tests/audit/test_groups.py",  # with the audit's groupings
    "data/table.py": "tests/data/test_sources.py",
    "datasets/raw.py": "tests/datasets/test_datasets.py",
    "encoders/category.py": "tests/encoders/test_encoders.py",
    "encoders/dense.py": "tests/encoders/test_encoders.py",
    "encoders/pretrained.py": "tests/pretrained/test_backbones.py",
    "errors.py": "tests/integration/test_hostile_inputs.py",
    "explain/attention.py": "tests/explain/test_words.py",  # rollout beside the words
    "explain/baselines.py": "tests/explain/test_target.py",  # baselines masked in by hand
    "explain/library.py": "tests/explain/test_run.py",
    "explain/lime.py": "tests/explain/test_run.py",  # each method finds the two columns
    "explain/methods.py": "tests/explain/test_run.py",
    "explain/output.py": "tests/cli/test_explain.py",
    "explain/page.py": "tests/integration/test_explain_browser.py",
    "explain/permutation.py": "tests/explain/test_run.py",
    "kinds.py": "tests/testing/test_checks.py",  # check_kind over every entry
    "model/extractor.py": "tests/pretrained/test_cache.py",
    "model/member.py": "tests/test_engine_api.py",
    "model/model.py": "tests/test_api.py",
    "model/network.py": "tests/train/test_engine.py",
    "nn/conv.py": "tests/encoders/test_image.py",
    "preprocess/base.py": "tests/preprocess/test_contract.py",
    "preprocess/boolean.py": "tests/preprocess/test_preprocessors.py",
    "preprocess/category.py": "tests/preprocess/test_preprocessors.py",
    "preprocess/datetime.py": "tests/preprocess/test_preprocessors.py",
    "preprocess/number.py": "tests/preprocess/test_preprocessors.py",
    "preprocess/target.py": "tests/preprocess/test_preprocessors.py",
    "pretrained/efficientnet.py": "tests/pretrained/test_backbones.py",
    "pretrained/minilm.py": "tests/pretrained/test_backbones.py",
    "recipes/crossval.py": "tests/test_engine_api.py",  # --folds end to end
    "recipes/embed.py": "tests/integration/test_transfer.py",
    "recipes/features.py": "tests/integration/test_transfer.py",
    "recipes/network.py": "tests/test_engine_api.py",
    "recipes/prepare.py": "tests/test_api.py",
    "recipes/records.py": "tests/report/test_render.py",
    "recipes/run.py": "tests/test_engine_api.py",
    "recipes/single.py": "tests/test_api.py",
    "report/html.py": "tests/report/test_render.py",
    "report/inputs.py": "tests/report/test_render.py",
    "report/plots.py": "tests/report/test_render.py",
    "report/sections.py": "tests/report/test_render.py",
    "report/validation.py": "tests/report/test_render.py",
    "seeding.py": "tests/train/test_resume.py",  # same seed, same weights, bit for bit
    "serve/errors.py": "tests/serve/test_app.py",
    "serve/handlers.py": "tests/serve/test_app.py",
    "serve/metrics.py": "tests/serve/test_app.py",
    "serve/routes.py": "tests/serve/test_app.py",
    "serve/settings.py": "tests/cli/test_serve.py",
    "tasks/base.py": "tests/testing/test_checks.py",  # check_task over every task
    "tasks/heads.py": "tests/train/test_engine.py",
    "tasks/binary.py": "tests/testing/test_checks.py",
    "tasks/multiclass.py": "tests/testing/test_checks.py",
    "tasks/regression.py": "tests/testing/test_checks.py",
    "train/batches.py": "tests/train/test_trainer.py",
    "train/callbacks.py": "tests/train/test_engine.py",
    "train/history.py": "tests/train/test_resume.py",
    "train/optimizer.py": "tests/train/test_engine.py",
    "train/precision.py": "tests/train/test_engine.py",
    "train/progress.py": "tests/test_engine_api.py",
    "train/run.py": "tests/test_engine_api.py",
    "values.py": "tests/preprocess/test_preprocessors.py",
    "version.py": "tests/test_api.py",
}
# ``task == "..."`` outside tasks/: none today (a task's behaviour is its own file's).
TASK_COMPARISONS_ALLOWED = 0


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_no_module_is_longer_than_500_lines():
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in modules()
        if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES
    }
    assert set(long) <= set(LONG_FILES), f"modules over {MAX_FILE_LINES} lines: {long}"


def test_no_function_is_longer_than_80_lines():
    long = {}
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(PACKAGE)}:{node.name}"] = lines
    assert set(long) <= set(LONG_FUNCTIONS), f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_every_module_has_a_test_file_or_is_listed_with_the_one_that_covers_it():
    missing, stale = [], []
    for path in modules():
        if path.name in ("__init__.py", "__main__.py"):
            continue
        relative = path.relative_to(PACKAGE)
        own = ROOT / "tests" / relative.parent / f"test_{relative.name}"
        listed = COVERED_ELSEWHERE.get(relative.as_posix())
        if own.is_file():
            if listed is not None:
                stale.append(f"{relative}: has {own.relative_to(ROOT)}; remove it from the list")
        elif listed is None:
            missing.append(f"{relative}: no {own.relative_to(ROOT)} and not listed")
        elif not (ROOT / listed).is_file():
            missing.append(f"{relative}: listed with {listed}, which does not exist")
    known = {p.relative_to(PACKAGE).as_posix() for p in modules()}
    stale += [f"{name}: listed but not a module" for name in COVERED_ELSEWHERE if name not in known]
    assert not missing and not stale, "\n".join(missing + stale)


def test_tasks_are_told_apart_only_in_their_own_files():
    pattern = re.compile(r"task\s*[!=]=\s*['\"]")
    found = [
        f"{p.relative_to(PACKAGE)}:{number}"
        for p in modules()
        if p.parent.name != "tasks"
        for number, line in enumerate(p.read_text().splitlines(), start=1)
        if pattern.search(line) and not line.lstrip().startswith(("#", ">>>"))
    ]
    assert len(found) <= TASK_COMPARISONS_ALLOWED, found


def test_the_layers_contract_holds():
    """import-linter's contracts in pyproject.toml: layers point down, no circles."""
    import subprocess
    import sys

    command = Path(sys.executable).parent / "lint-imports"
    if not command.exists():
        pytest.skip("import-linter is not installed (the dev extra)")
    result = subprocess.run([str(command)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


def test_no_import_circles():
    grimp = pytest.importorskip("grimp", reason="grimp comes with import-linter (the dev extra)")
    graph = grimp.build_graph("deepstrata", include_external_packages=False)
    circles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            nested = module.startswith(imported + ".") or imported.startswith(module + ".")
            back = not nested and graph.chain_exists(importer=imported, imported=module)
            if imported != module and back:
                circles.append(f"{module} <-> {imported}")
    assert not circles, "import circles:\n" + "\n".join(sorted(set(circles))[:40])

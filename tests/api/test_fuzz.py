"""The whole API fuzzed with schemathesis against a real ``tastebud serve`` (issue 18).

Every operation of the OpenAPI document gets ``TASTEBUD_FUZZ_EXAMPLES`` generated requests (valid
and invalid ones), each sent with a token of a scope drawn by hypothesis (admin, recommend,
ingest, or one the server does not know). Half of them are aimed at the data set the server
holds (its group, campaign, solution … in the path), so authenticated success paths are reached,
not only 401s and 404s. Each answer must be no 5xx and must conform to the document: a declared
status, content type, headers and body schema. ``benchmarks/fuzz_api.py`` runs it longer.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from tastebud.api.app import create_app
from tastebud.cli.demo import DEMO_SCHEMAS
from tastebud.client import Client
from tastebud.demo import generate
from tastebud.settings import Settings

from .servers import ADMIN_TOKEN, ServeProcess

EXAMPLES = int(os.environ.get("TASTEBUD_FUZZ_EXAMPLES", "6"))
# Set by benchmarks/fuzz_api.py: a fresh random run (the suite's is the same every time), and
# where to write what was sent and answered.
RANDOM = os.environ.get("TASTEBUD_FUZZ_RANDOM") == "1"
REPORT = os.environ.get("TASTEBUD_FUZZ_REPORT")
# Beyond the document: a request valid for the schema may still break a rule the schema cannot
# say (a filter's syntax, one of two fields required, a known recipe): 422 is its declared answer.
# And pydantic's lax mode accepts what the schema does not (0 for false, "10" for 10): the
# answers still conform, but strict wire models are a change of their own (docs/api.md).
EXCLUDED_CHECKS = [
    schemathesis.checks.positive_data_acceptance,
    schemathesis.checks.negative_data_rejection,
]
GROUP = "fuzz"
SCOPES = ("admin", "recommend", "ingest", "unknown")
# An existing resource of each collection, for a `{name}` in its paths.
NAMES = {"campaigns": "home", "solutions": "popular", "filters": "unseen",
         "experiments": "ab", "metric-attributions": "clicks"}  # fmt: skip


@dataclass
class Target:
    """The server under test and what it holds."""

    url: str
    tokens: dict[str, str]  # by scope
    ids: dict[str, str]  # path parameter -> an existing id (user, job, version)
    answers: Counter[tuple[str, int]] = field(default_factory=Counter)  # (operation, status)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    home = tmp_path_factory.mktemp("fuzz")
    # No scheduled training in the background: a fuzzed schedule could retrain every second.
    server = ServeProcess(home, env={"TASTEBUD_SCHEDULES__RUN_IN_SERVE": "false"})
    try:
        server.wait_ready(60)
        target = populate(server.url, home / "data")
        yield target
    finally:
        log = server.stop()
    if REPORT:
        _write_report(Path(REPORT), target)
    assert '"request failed' not in log, log  # the server logged no unexpected exception


def populate(url: str, folder: Path) -> Target:
    """A small streaming-service data set, a trained solution behind a campaign, a filter, an
    experiment, a metric attribution, and a token of each scope."""
    data = generate(n_users=60, n_items=40, days=20, seed=0)
    files = data.write_csv(folder)
    with Client(url, token=ADMIN_TOKEN, group=GROUP, timeout=60) as client:
        client.create_group(GROUP)
        for dataset in ("items", "users", "interactions"):
            client.put_schema(dataset, DEMO_SCHEMAS[dataset])  # type: ignore[arg-type]
            client.import_file(files[dataset], dataset=dataset, mode="full", poll_interval=0.05)
        client.create_solution("popular", "popularity-count")
        version = client.train("popular", poll_interval=0.05)
        client.create_campaign("home", "popular")
        client.create_campaign("home-b", "popular")
        client.create_filter("unseen", 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("watch")')
        client.create_experiment("ab", {"control": ("home", 50), "treatment": ("home-b", 50)})
        client.create_metric_attribution("clicks", event_type="click", expression="SAMPLECOUNT()")
        tokens = {scope: client.create_token(f"fuzz-{scope}", scope=scope)["token"]
                  for scope in ("recommend", "ingest")}  # fmt: skip
        job = client.import_jobs()[0]["id"]
    tokens |= {"admin": ADMIN_TOKEN, "unknown": "tb_not_a_token"}
    user = str(data.users["USER_ID"][0])
    ids = {"user_id": user, "job_id": job, "version_id": version["id"]}
    return Target(url, tokens, ids)


def _document() -> dict[str, Any]:
    """The document the code makes (the server serves the same: checked below)."""
    return create_app(Settings(home=Path(tempfile.gettempdir()) / "tastebud-fuzz")).openapi()


DOCUMENT = _document()
schema = schemathesis.openapi.from_dict(DOCUMENT)


def test_the_server_serves_the_document(target: Target) -> None:
    assert httpx.get(f"{target.url}/openapi.json").json() == DOCUMENT


@schema.parametrize()
@schema.given(scope=st.sampled_from(SCOPES), entitled=st.booleans(), aimed=st.booleans())
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not RANDOM,
    database=None,
    suppress_health_check=list(HealthCheck),
    phases=[phase for phase in Phase if phase != Phase.explicit],  # examples: the test below
)
def test_every_answer_conforms_to_the_document(
    case: Any, scope: str, entitled: bool, aimed: bool, target: Target
) -> None:
    accepted = case.operation.definition.raw.get("x-token-scopes") or SCOPES
    if entitled and scope not in accepted:  # half get past the scope check, to the work
        scope = accepted[0]
    if aimed:
        aim(case, target)
    call_and_validate(case, target, target.tokens[scope])


@schema.parametrize()
@settings(phases=[Phase.explicit], deadline=None, database=None)
def test_the_documented_examples_conform(case: Any, target: Target) -> None:
    """The request examples of the document, sent by an admin to the data the server holds."""
    aim(case, target)
    call_and_validate(case, target, ADMIN_TOKEN)


def call_and_validate(case: Any, target: Target, token: str) -> None:
    """Send ``case`` with ``token``, check the answer against the document, count it."""
    response = case.call_and_validate(
        base_url=target.url,
        headers={"Authorization": f"Bearer {token}"},
        excluded_checks=EXCLUDED_CHECKS,
        timeout=60,
    )
    target.answers[(f"{case.method} {case.path}", response.status_code)] += 1


def aim(case: Any, target: Target) -> None:
    """Point the case's path at the data the server holds (never deleting the group itself)."""
    parameters: dict[str, Any] = case.path_parameters or {}
    path: str = case.path
    if "group" in parameters and not (case.method == "DELETE" and path.endswith("{group}")):
        parameters["group"] = GROUP
    if "name" in parameters and case.method != "DELETE" and path.startswith("/v1/dataset-groups"):
        collection = path.split("/")[4]
        parameters["name"] = NAMES.get(collection, parameters["name"])
    for name, value in target.ids.items():
        if name in parameters:
            parameters[name] = value


def _write_report(path: Path, target: Target) -> None:
    rows = [{"operation": op, "status": status, "count": count}
            for (op, status), count in sorted(target.answers.items())]  # fmt: skip
    path.write_text(json.dumps(rows, indent=1))

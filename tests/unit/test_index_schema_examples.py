"""The episode aggregations shown in docs/index-schema.md are the ones the server sends: each
JSON body after an `<!-- analytics: <question> k=v ... -->` marker equals `compile_answer` of
that query, so the page cannot drift from the code."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from indexing.analytics import QUESTIONS, AnalyticsQuery
from indexing.engines.elasticsearch.episodes import compile_answer

DOC = Path(__file__).resolve().parents[2] / "docs" / "index-schema.md"
EXAMPLE = re.compile(r"<!-- analytics: (\w+)((?: [\w]+=\S+)*) -->\n```json\n(.*?)\n```", re.S)
EXAMPLES = EXAMPLE.findall(DOC.read_text())


def test_every_question_has_an_example() -> None:
    assert sorted({question for question, _, _ in EXAMPLES}) == sorted(QUESTIONS)


@pytest.mark.parametrize(("question", "params", "body"), EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_the_example_is_the_compiled_query(question: str, params: str, body: str) -> None:
    fields: dict[str, str | int] = dict(p.split("=", 1) for p in params.split())
    if "days" in fields:
        fields["days"] = int(fields["days"])
    query = AnalyticsQuery(question, **fields)  # type: ignore[arg-type]
    assert json.loads(body) == compile_answer(query)

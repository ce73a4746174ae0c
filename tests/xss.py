"""The XSS corpus; a check that a page holds none of it as markup; and evaluation data
(datasets, their records and tags, scorers, run inputs, scorer metrics, assessments, costs)
stored with the corpus through the MLflow REST API, for the page tests and the browser test."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote as url_quote

from tests.payloads import mlflow_client_trace

# Each item breaks out of a different context: text, a quoted attribute, SVG, a link, the
# markdown renderer, a script string, an event handler, a style sheet.
CORPUS = [
    "<script>alert('script')</script>",
    '"><img src=x onerror=alert("img")>',
    "<svg onload=alert('svg')><script>alert('svg-script')</script></svg>",
    "<a href=\"javascript:alert('href')\">click</a>",
    "[markdown link](javascript:alert('md'))",
    '![image](x" onerror="alert(1))',
    "<iframe src=\"javascript:alert('iframe')\"></iframe>",
    "'-alert('quote')-'",
    "<details open ontoggle=alert('toggle')>",
    "<style>body{display:none}</style>",
]
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "data", "srcdoc"}
FOREIGN_TAGS = {"iframe", "object", "embed", "base", "style", "frame", "frameset"}


class _Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}=...>")
            if name in URL_ATTRIBUTES and (value or "").strip().lower().startswith("javascript:"):
                self.found.append(f"<{tag} {name}={value!r}>")
        if tag == "script" and not named.get("src") and named.get("type") != "application/json":
            self.found.append("an inline <script>")
        if tag in FOREIGN_TAGS or (tag == "img" and named.get("src") == "x"):
            self.found.append(f"<{tag}>")


def injected_markup(html: str) -> list[str]:
    """What an escaped corpus never makes: event handler attributes, javascript: URLs,
    inline scripts, frames, style sheets, and the corpus's own elements. Spyglass's pages
    use none of them (its CSP forbids inline script and style)."""
    parser = _Markup()
    parser.feed(html)
    parser.close()
    return parser.found


@dataclass
class EvaluationCorpus:
    experiment_id: str
    run_id: str
    model_ids: list[str]
    trace_id: str
    span_ids: list[str]  # hex, as the span detail URL takes them
    dataset_ids: list[str]
    scorer_ids: list[str]

    def pages(self) -> list[str]:
        """Every page that shows evaluation data: scorer metrics and their dataset names
        (model list, detail, compare), assessments (the trace), costs and the priced model's
        name (trace list, model traces, span details)."""
        trace = f"/traces/{self.trace_id}/"
        first, second = self.model_ids
        chosen = "&".join(f"col=metric:{item}/mean" for item in CORPUS)
        return [
            "/",
            "/traces/",
            f"/traces/?experiment={self.experiment_id}",
            trace,
            *(f"{trace}spans/{span}/" for span in self.span_ids),
            "/models/",
            f"/models/?cols=1&{chosen}",
            f"/models/{first}/",
            f"/models/{first}/traces/",
            f"/models/compare/?ids={first},{second}",
        ]

    def fragments(self) -> list[str]:
        """Parts of those pages that are also requested on their own (htmx)."""
        first, second = self.model_ids
        return [
            f"/models/compare/answers/?ids={first},{second}",
            *(f"/traces/{self.trace_id}/spans/{span}/" for span in self.span_ids),
        ]

    def api_reads(self) -> list[str]:
        """MLflow API reads that answer the corpus: data that no page shows (datasets,
        records, dataset tags, registered scorers, run inputs) included."""
        d, s, e = "/api/3.0/mlflow/datasets/", "/api/3.0/mlflow/scorers/", self.experiment_id
        return [
            *(f"{d}{dataset_id}" for dataset_id in self.dataset_ids),
            *(f"{d}{dataset_id}/records" for dataset_id in self.dataset_ids),
            f"{d}search?experiment_ids={e}",
            f"{s}list?experiment_id={e}",
            *(f"{s}versions?experiment_id={e}&name={quote(item)}" for item in CORPUS),
            *(f"{s}get?experiment_id={e}&name={quote(item)}" for item in CORPUS),
            f"{s}online-configs?" + "&".join(f"scorer_ids={i}" for i in self.scorer_ids),
            f"/api/2.0/mlflow/runs/get?run_id={self.run_id}",
            f"/api/3.0/mlflow/traces/{self.trace_id}",
            f"/api/2.0/mlflow-artifacts/artifacts/{e}/traces/{self.trace_id}/artifacts/traces.json",
            *(f"/api/2.0/mlflow/logged-models/{model_id}" for model_id in self.model_ids),
        ]


def quote(text: str) -> str:
    """`text` as one URL path segment or query value."""
    return url_quote(text, safe="")


def store_evaluation_corpus(client: Any) -> EvaluationCorpus:
    """The corpus in every evaluation field, each item on its own (names have length caps),
    sent as a client sends it: `client` is a Django test client on the MLflow REST API."""

    def send(path: str, body: Any, method: str = "post") -> dict[str, Any]:
        response = client.generic(method.upper(), path, json.dumps(body), "application/json")
        assert response.status_code == 200, (path, response.content[:300])
        return response.json()

    v2, v3 = "/api/2.0/mlflow/", "/api/3.0/mlflow/"
    e = send(v2 + "experiments/create", {"name": "evaluation"})["experiment_id"]
    run = send(v2 + "runs/create", {"experiment_id": e, "run_name": CORPUS[0]})["run"]
    run_id = run["info"]["run_id"]
    model_ids = [
        send(v2 + "logged-models", {"experiment_id": e, "name": name})["model"]["info"]["model_id"]
        for name in ("agent", "agent")
    ]
    # Scorer metrics as mlflow.genai.evaluate logs them: `<scorer>/mean` on the run and on
    # the evaluated model, each with the dataset's name.
    for value, model_id in zip((0.5, 0.75), model_ids, strict=True):
        metrics = [{"key": f"{item}/mean", "value": value, "timestamp": 1, "step": 0,
                    "model_id": model_id, "dataset_name": item, "dataset_digest": "abc"}
                   for item in CORPUS]  # fmt: skip
        send(v2 + "runs/log-batch", {"run_id": run_id, "metrics": metrics})
    logged = [
        {
            "dataset": {"name": item, "digest": "d1", "source_type": "code", "source": item},
            "tags": [{"key": "mlflow.data.context", "value": item}],
        }
        for item in CORPUS
    ]
    send(v2 + "runs/log-inputs", {"run_id": run_id, "datasets": logged})

    dataset_ids = []
    for item in CORPUS:
        tags = json.dumps({item: item, "mlflow.user": item})
        made = send(v3 + "datasets/create", {"name": item, "experiment_ids": [e], "tags": tags})
        dataset_id = made["dataset"]["dataset_id"]
        record = {
            "inputs": {item: item, "question": item},
            "expectations": {item: item},
            "outputs": item,
            "tags": {item: item},
            "source": {"source_type": "HUMAN", "source_data": {"source_id": item}},
        }
        send(f"{v3}datasets/{dataset_id}/records", {"records": json.dumps([record])})
        send(f"{v3}datasets/{dataset_id}/tags", {"tags": json.dumps({"note": item})}, "patch")
        dataset_ids.append(dataset_id)

    scorer_ids = []
    for item in CORPUS:
        judge = {"instructions_judge_pydantic_data": {"instructions": item, "model": "openai:/x"}}
        registered = {"experiment_id": e, "name": item, "serialized_scorer": json.dumps(judge)}
        made = send(v3 + "scorers/register", registered)
        on_tag = f"tags.note = {json.dumps(CORPUS[0])}"  # a filter holding the corpus
        config = {"experiment_id": e, "name": item, "sample_rate": 0.5, "filter_string": on_tag}
        send(v3 + "scorers/online-config", config, "put")
        scorer_ids.append(made["scorer_id"])

    trace_id, span_ids = _store_priced_trace(send, int(e), model_ids[0], run_id)
    for model_id in model_ids[1:]:  # the compare page's answers: the same request, each model
        _store_priced_trace(send, int(e), model_id, run_id)
    return EvaluationCorpus(e, run_id, model_ids, trace_id, span_ids, dataset_ids, scorer_ids)


def _store_priced_trace(send: Any, experiment_id: int, model_id: str, run_id: str):
    """A trace of `model_id` whose LLM spans name the corpus as their model (shown beside
    the cost) or send a cost of the corpus, judged by scorers named with the corpus."""
    names = ("agent", *(f"llm-{i}" for i in range(len(CORPUS))), "client-priced")
    info, spans = mlflow_client_trace(
        experiment_id,
        names,
        trace_metadata={"mlflow.modelId": model_id, "mlflow.sourceRun": run_id,
                        "mlflow.trace.cost": CORPUS[1], "mlflow.trace_schema.version": "3"},
    )  # fmt: skip
    usage = json.dumps({"input_tokens": 100, "output_tokens": 20, "total_tokens": 120})
    for item, span in zip(CORPUS, spans[1:], strict=False):
        span["attributes"].update({"mlflow.spanType": '"LLM"', "mlflow.chat.tokenUsage": usage,
                                   "mlflow.llm.model": json.dumps(item)})  # fmt: skip
    spans[-1]["attributes"].update(
        {
            "mlflow.spanType": '"LLM"',
            "mlflow.chat.tokenUsage": usage,
            "mlflow.llm.model": json.dumps("gpt-4o"),
            "mlflow.llm.cost": json.dumps({"input_cost": CORPUS[0], "total_cost": CORPUS[2]}),
        }
    )
    trace_id = info["trace_id"]
    send("/api/3.0/mlflow/traces", {"trace": {"trace_info": info}})
    send(f"/api/2.0/mlflow-artifacts/artifacts/{experiment_id}/traces/{trace_id}/artifacts/"
         "traces.json", {"spans": spans}, "put")  # fmt: skip
    for item in CORPUS:
        source = {"source_type": "LLM_JUDGE", "source_id": item}
        failed = {"value": item, "error": {"error_code": item, "error_message": item}}
        feedback = {"assessment_name": item, "source": source, "rationale": item,
                    "feedback": failed, "metadata": {item: item}}  # fmt: skip
        expectation = {"assessment_name": item, "source": {**source, "source_type": "HUMAN"},
                       "expectation": {"value": item}}  # fmt: skip
        for assessment in (feedback, expectation):
            send(f"/api/3.0/mlflow/traces/{trace_id}/assessments", {"assessment": assessment})
        send(f"/api/3.0/mlflow/traces/{trace_id}/tags", {"key": item, "value": item}, "patch")
    send("/api/2.0/mlflow/traces/link-to-run", {"run_id": run_id, "trace_ids": [trace_id]})
    span_ids = [base64.b64decode(span["span_id"]).hex() for span in spans]
    return trace_id, span_ids

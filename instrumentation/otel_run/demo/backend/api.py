"""The reference backend's endpoints: ``/ai/*`` (the AI service) and
``/cfapi/*`` (the CF API), as codeflash 0.20.6 calls them.

Every AI endpoint runs the same pipeline, one span per step: request
deserialization (``request.deserialize``), ``prompt.assemble``, the LLM call
(GenAI span), ``completion.parse``, ``result.store`` (SQLite spans),
``response.serialize``.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja import NinjaAPI, Status
from ninja.errors import ValidationError
from ninja.parser import Parser
from ninja.renderers import JSONRenderer

from otel_run import stage
from otel_run.demo.backend import pipeline, schemas
from otel_run.demo.backend.models import Drift, Exchange


class TimedParser(Parser):
    """Request bodies are JSON-decoded inside a ``request.deserialize`` span."""

    def parse_body(self, request: HttpRequest) -> Any:
        with stage("request.deserialize", **{"http.request.body.size": len(request.body)}):
            data = super().parse_body(request)
        request.otel_run_body = data  # kept for the drift check (the schema drops unknown fields)
        return data


class TimedRenderer(JSONRenderer):
    """Responses are JSON-encoded inside a ``response.serialize`` span."""

    def render(self, request: HttpRequest, data: Any, *, response_status: int) -> Any:
        with stage("response.serialize") as span:
            body = super().render(request, data, response_status=response_status)
            span.set_attribute("http.response.body.size", len(body))
            return body


ai = NinjaAPI(urls_namespace="ai", parser=TimedParser(), renderer=TimedRenderer(), docs_url=None, title="ai")
cfapi = NinjaAPI(urls_namespace="cfapi", parser=TimedParser(), renderer=TimedRenderer(), docs_url=None, title="cfapi")
_seen_drift: set[tuple[str, str]] = set()


# ----------------------------------------------------------------- /ai/*


@ai.post("/optimize")
def optimize(request: HttpRequest, body: schemas.OptimizeRequest) -> dict[str, Any]:
    _drift(request, "/ai/optimize", body)
    with stage("prompt.assemble"):
        prompt = pipeline.optimize_prompt(body.source_code, body.dependency_code, body.language_version)
    completion = pipeline.complete("optimize", prompt, stream=True)
    with stage("completion.parse"):
        result = {"optimizations": pipeline.candidates(completion, pipeline.first_path(body.source_code))}
    _store("/ai/optimize", body.trace_id, body, result, completion)
    return result


@ai.post("/optimize-line-profiler")
def optimize_line_profiler(request: HttpRequest, body: schemas.LineProfilerRequest) -> dict[str, Any]:
    _drift(request, "/ai/optimize-line-profiler", body)
    with stage("prompt.assemble"):
        profile = "Line profile:\n" + body.line_profiler_results
        prompt = pipeline.optimize_prompt(body.source_code, body.dependency_code, body.language_version, profile)
    completion = pipeline.complete("optimize-line-profiler", prompt)
    with stage("completion.parse"):
        result = {"optimizations": pipeline.candidates(completion, pipeline.first_path(body.source_code))}
    _store("/ai/optimize-line-profiler", body.trace_id, body, result, completion)
    return result


@ai.post("/refinement")
def refinement(request: HttpRequest, body: list[schemas.RefinementRequest]) -> dict[str, Any]:
    refined: list[dict[str, Any]] = []
    for item in body:
        _drift(request, "/ai/refinement", item)
        with stage("prompt.assemble"):
            prompt = pipeline.optimize_prompt(
                item.original_source_code,
                item.read_only_dependency_code,
                item.language_version,
                f"Candidate ({item.speedup} faster):\n{item.optimized_source_code}",
            )
        completion = pipeline.complete("refinement", prompt)
        with stage("completion.parse"):
            refined += pipeline.candidates(
                completion, pipeline.first_path(item.optimized_source_code), parent_id=item.optimization_id
            )
        _store("/ai/refinement", item.trace_id, item, {"refinements": refined}, completion)
    return {"refinements": refined}


@ai.post("/code_repair", response={200: dict, 404: dict})
def code_repair(request: HttpRequest, body: schemas.CodeRepairRequest) -> Any:
    _drift(request, "/ai/code_repair", body)
    with stage("prompt.assemble"):
        diffs = "\n".join(f"- {d.scope}: {d.original_value!r} became {d.candidate_value!r}" for d in body.test_diffs)
        prompt = pipeline.optimize_prompt(
            body.original_source_code, "", None, f"Candidate:\n{body.modified_source_code}\nDifferences:\n{diffs}"
        )
    completion = pipeline.complete("code_repair", prompt)
    with stage("completion.parse"):
        found = pipeline.candidates(completion, pipeline.first_path(body.modified_source_code), body.optimization_id)
    _store("/ai/code_repair", body.trace_id, body, {"candidate": found[:1]}, completion)
    return Status(200, found[0]) if found else Status(404, {"error": "no repaired candidate"})


@ai.post("/adaptive_optimize", response={200: dict, 404: dict})
def adaptive_optimize(request: HttpRequest, body: schemas.AdaptiveRequest) -> Any:
    _drift(request, "/ai/adaptive_optimize", body)
    with stage("prompt.assemble"):
        tried = "\n".join(f"{c.source} ({c.speedup}):\n{c.source_code}" for c in body.candidates)
        prompt = pipeline.optimize_prompt(body.original_source_code, "", None, "Candidates so far:\n" + tried)
    completion = pipeline.complete("adaptive_optimize", prompt)
    parent = body.candidates[-1].optimization_id if body.candidates else None
    with stage("completion.parse"):
        found = pipeline.candidates(completion, pipeline.first_path(body.original_source_code), parent)
    _store("/ai/adaptive_optimize", body.trace_id, body, {"candidate": found[:1]}, completion)
    return Status(200, found[0]) if found else Status(404, {"error": "no new candidate"})


@ai.post("/testgen", response={200: dict, 404: dict})
def testgen(request: HttpRequest, body: schemas.TestgenRequest) -> Any:
    _drift(request, "/ai/testgen", body)
    with stage("prompt.assemble"):
        prompt = pipeline.testgen_prompt(body)
    completion = pipeline.complete("testgen", prompt, stream=True)
    with stage("completion.parse"):
        tests = pipeline.test_source(completion)
    if tests is None:
        _store("/ai/testgen", body.trace_id, body, {"error": "no tests"}, completion, status=404)
        return Status(404, {"error": "the model wrote no tests"})
    with stage("tests.instrument"):
        behavior, perf = pipeline.instrument_tests(tests, body)
    result = {
        "generated_tests": tests,
        "instrumented_behavior_tests": behavior,
        "instrumented_perf_tests": perf,
        "raw_generated_tests": tests,
    }
    _store("/ai/testgen", body.trace_id, body, {"generated_tests": tests}, completion)
    return result


@ai.post("/rank", response={200: dict, 404: dict})
def rank(request: HttpRequest, body: schemas.RankRequest) -> Any:
    _drift(request, "/ai/rank", body)
    with stage("prompt.assemble"):
        pairs = enumerate(zip(body.diffs, body.speedups, strict=False))
        prompt = "\n\n".join(f"[{i}] speedup {s:.2f}x\n{d}" for i, (d, s) in pairs)
    completion = pipeline.complete("rank", prompt)
    with stage("completion.parse"):
        order = pipeline.ranking(completion, len(body.diffs))
    if order is None:  # the model gave no usable ranking: fastest first
        order = sorted(range(len(body.speedups)), key=lambda i: -body.speedups[i])
    _store("/ai/rank", body.trace_id, body, {"ranking": order}, completion)
    return {"ranking": order}


@ai.post("/log_features")
def log_features(request: HttpRequest, body: schemas.LogFeaturesRequest) -> dict[str, Any]:
    _drift(request, "/ai/log_features", body)
    _store("/ai/log_features", body.trace_id, body, {}, None)
    return {}


@ai.post("/explain", response={200: dict, 404: dict})
def explain(request: HttpRequest, body: schemas.ExplainRequest) -> Any:
    _drift(request, "/ai/explain", body)
    with stage("prompt.assemble"):
        prompt = "\n\n".join(
            [
                f"Original ({body.original_code_runtime}):",
                body.source_code,
                f"Optimized ({body.optimized_code_runtime}, {body.speedup} faster):",
                body.optimized_code,
                "First explanation:",
                body.original_explanation,
            ]
        )
    completion = pipeline.complete("explain", prompt)
    with stage("completion.parse"):
        text = completion.text.strip()
    _store("/ai/explain", body.trace_id, body, {"explanation": text}, completion)
    return Status(200, {"explanation": text}) if text else Status(404, {"error": "no explanation"})


@ai.post("/optimization_review")
def optimization_review(request: HttpRequest, body: schemas.ReviewRequest) -> dict[str, Any]:
    _drift(request, "/ai/optimization_review", body)
    with stage("prompt.assemble"):
        prompt = "\n\n".join(
            [
                f"Speedup: {body.speedup}; coverage: {body.coverage_message}",
                "Original:",
                body.original_code,
                "Optimized:",
                body.optimized_code,
                "Explanation:",
                body.explanation,
                "Tests:",
                body.generated_tests,
            ]
        )
    completion = pipeline.complete("optimization_review", prompt)
    with stage("completion.parse"):
        verdict, why = pipeline.review(completion)
    result = {"review": verdict, "review_explanation": why}
    _store("/ai/optimization_review", body.trace_id, body, result, completion)
    return result


# -------------------------------------------------------------- /cfapi/*


@cfapi.get("/cli-get-user", response={403: dict})
def cli_get_user(request: HttpRequest) -> Any:
    # 403 tells codeflash the key cannot be used for telemetry: it then sends no
    # PostHog events (which would otherwise go to the internet).
    return Status(403, {"error": "the reference backend has no users; telemetry stays off"})


@cfapi.post("/mark-as-success")
def mark_as_success(request: HttpRequest, body: schemas.MarkSuccessRequest) -> dict[str, Any]:
    _drift(request, "/cfapi/mark-as-success", body)
    _store("/cfapi/mark-as-success", body.trace_id, body, {}, None)
    return {}


@cfapi.get("/is-github-app-installed")
def is_github_app_installed(request: HttpRequest) -> HttpResponse:
    return HttpResponse("true", content_type="text/plain")


@cfapi.post("/create-pr")
def create_pr(request: HttpRequest) -> HttpResponse:
    _store_raw("/cfapi/create-pr", request)
    return HttpResponse("1", content_type="text/plain")


@cfapi.post("/suggest-pr-changes")
def suggest_pr_changes(request: HttpRequest) -> HttpResponse:
    _store_raw("/cfapi/suggest-pr-changes", request)
    return HttpResponse("1", content_type="text/plain")


@cfapi.post("/verify-existing-optimizations")
def verify_existing_optimizations(request: HttpRequest) -> dict[str, Any]:
    _store_raw("/cfapi/verify-existing-optimizations", request)
    return {}


@cfapi.post("/is-already-optimized")
def is_already_optimized(request: HttpRequest) -> dict[str, Any]:
    _store_raw("/cfapi/is-already-optimized", request)
    return {"already_optimized_tuples": []}


@cfapi.post("/add-code-hash")
def add_code_hash(request: HttpRequest) -> dict[str, Any]:
    _store_raw("/cfapi/add-code-hash", request)
    return {}


@cfapi.post("/send-completion-email")
def send_completion_email(request: HttpRequest) -> dict[str, Any]:
    _store_raw("/cfapi/send-completion-email", request)
    return {}


# ---------------------------------------------- unknown routes and fields


def _unknown(prefix: str) -> Any:
    def handler(request: HttpRequest, path: str) -> Any:
        endpoint = f"{prefix}/{path}"
        _record(endpoint, "unknown-route", f"{request.method} {endpoint}")
        return Status(404, {"error": f"the reference backend has no {request.method} {endpoint}"})

    return handler


for _api, _prefix in ((ai, "/ai"), (cfapi, "/cfapi")):
    _api.api_operation(["GET", "POST", "PUT", "PATCH", "DELETE"], "/{path:path}", response={404: dict})(
        _unknown(_prefix)
    )


def _validation_error(request: HttpRequest, exc: Any) -> HttpResponse:
    endpoint = request.path.rstrip("/")
    detail = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors)
    _record(endpoint, "invalid", detail)
    return JsonResponse({"error": f"request does not match the reference backend's schema: {detail}"}, status=422)


ai.add_exception_handler(ValidationError, _validation_error)
cfapi.add_exception_handler(ValidationError, _validation_error)


def _drift(request: HttpRequest, endpoint: str, body: Any) -> None:
    """Record fields of the request the schema does not know (a newer codeflash, or a bug)."""
    raw = getattr(request, "otel_run_body", None)
    if isinstance(raw, list):  # a list body (refinement): check the item this body came from
        trace_id = getattr(body, "trace_id", None)
        raw = next((r for r in raw if isinstance(r, dict) and r.get("trace_id") == trace_id), None)
    unknown = sorted(_unknown_keys(type(body), raw)) if isinstance(raw, dict) else []
    if unknown:
        _record(endpoint, "unknown-fields", ", ".join(unknown))


def _unknown_keys(schema: Any, data: dict[str, Any], prefix: str = "") -> set[str]:
    fields = getattr(schema, "model_fields", {})
    found = {prefix + key for key in data if key not in fields}
    for name, field in fields.items():
        value = data.get(name)
        inner = _schema_of(field.annotation)
        if inner is None:
            continue
        if isinstance(value, dict):
            found |= _unknown_keys(inner, value, f"{prefix}{name}.")
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    found |= _unknown_keys(inner, item, f"{prefix}{name}[].")
    return found


def _schema_of(annotation: Any) -> Any:
    """The schema class inside ``Schema``, ``list[Schema]`` or ``Schema | None``."""
    if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _schema_of(arg)
        if found is not None:
            return found
    return None


def _record(endpoint: str, kind: str, detail: str) -> None:
    key = (endpoint, f"{kind}:{detail}")
    if key in _seen_drift:
        return
    _seen_drift.add(key)
    Drift.objects.create(endpoint=endpoint, kind=kind, detail=detail)


# --------------------------------------------------------------- storage


def _store(
    endpoint: str,
    trace_id: str,
    body: Any,
    result: dict[str, Any],
    completion: pipeline.Completion | None,
    status: int = 200,
) -> None:
    with stage("result.store"):
        Exchange.objects.create(
            endpoint=endpoint,
            trace_id=trace_id,
            status=status,
            model=completion.model if completion else "",
            prompt_tokens=completion.prompt_tokens if completion else 0,
            completion_tokens=completion.completion_tokens if completion else 0,
            request=body.model_dump(mode="json") if hasattr(body, "model_dump") else body,
            response=result,
        )


def _store_raw(endpoint: str, request: HttpRequest) -> None:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        body = {"raw": request.body.decode("utf-8", "replace")}
    _store(endpoint, str(body.get("traceId") or body.get("trace_id") or ""), body, {}, None)

"""Request bodies the reference backend understands: codeflash 0.20.6's, field
by field (``codeflash/api/aiservice.py``, ``cfapi.py``).

Unknown fields are accepted and recorded as drift (a newer codeflash may add a
harmless field); a missing required field or a wrong type is rejected with 422
and recorded too. The contract test reads the drift.
"""

from __future__ import annotations

from typing import Any

from ninja import Schema
from pydantic import ConfigDict


class _Body(Schema):
    model_config = ConfigDict(extra="allow")


class FunctionToOptimize(_Body):
    function_name: str
    file_path: str
    parents: list[dict[str, Any]] = []
    starting_line: int | None = None
    ending_line: int | None = None
    starting_col: int | None = None
    ending_col: int | None = None
    is_async: bool = False
    is_method: bool = False
    language: str = "python"
    doc_start_line: int | None = None


class OptimizeRequest(_Body):
    source_code: str
    dependency_code: str = ""
    trace_id: str
    language: str = "python"
    language_version: str | None = None
    experiment_metadata: dict[str, Any] | None = None
    codeflash_version: str | None = None
    current_username: str | None = None
    repo_owner: str | None = None
    repo_name: str | None = None
    is_async: bool = False
    call_sequence: int | None = None
    n_candidates: int = 5
    is_numerical_code: bool | None = None
    rerun_trace_id: str | None = None
    module_system: str | None = None


class LineProfilerRequest(_Body):
    source_code: str
    dependency_code: str = ""
    n_candidates: int = 6
    line_profiler_results: str
    trace_id: str
    language: str = "python"
    language_version: str | None = None
    experiment_metadata: dict[str, Any] | None = None
    codeflash_version: str | None = None
    call_sequence: int | None = None
    is_numerical_code: bool | None = None
    rerun_trace_id: str | None = None


class RefinementRequest(_Body):
    optimization_id: str
    original_source_code: str
    read_only_dependency_code: str = ""
    original_line_profiler_results: str = ""
    original_code_runtime: str = ""
    optimized_source_code: str
    optimized_explanation: str = ""
    optimized_line_profiler_results: str = ""
    optimized_code_runtime: str = ""
    speedup: str = ""
    trace_id: str
    function_references: str | None = None
    call_sequence: int | None = None
    language: str = "python"
    rerun_trace_id: str | None = None
    language_version: str | None = None
    additional_context_files: dict[str, str] | None = None


class TestDiff(_Body):
    scope: str
    original_pass: bool | None = None
    candidate_pass: bool | None = None
    original_value: str | None = None
    candidate_value: str | None = None
    test_src_code: str | None = None
    candidate_pytest_error: str | None = None
    original_pytest_error: str | None = None


class CodeRepairRequest(_Body):
    optimization_id: str
    original_source_code: str
    modified_source_code: str
    trace_id: str
    test_diffs: list[TestDiff] = []
    language: str = "python"
    rerun_trace_id: str | None = None


class AdaptiveCandidate(_Body):
    optimization_id: str
    source_code: str
    explanation: str = ""
    source: str = ""
    speedup: str = ""


class AdaptiveRequest(_Body):
    trace_id: str
    original_source_code: str
    candidates: list[AdaptiveCandidate]


class TestgenRequest(_Body):
    source_code_being_tested: str
    function_to_optimize: FunctionToOptimize
    helper_function_names: list[str] = []
    module_path: str
    test_module_path: str
    test_framework: str = "pytest"
    test_timeout: int = 15
    trace_id: str
    test_index: int = 0
    language: str = "python"
    codeflash_version: str | None = None
    is_async: bool = False
    call_sequence: int | None = None
    is_numerical_code: bool | None = None
    class_name: str | None = None
    qualified_name: str | None = None
    rerun_trace_id: str | None = None
    language_version: str | None = None
    module_system: str | None = None


class RankRequest(_Body):
    trace_id: str
    diffs: list[str]
    speedups: list[float]
    optimization_ids: list[str]
    function_references: str | None = None


class LogFeaturesRequest(_Body):
    trace_id: str
    speedup_ratio: dict[str, float | None] = {}
    original_runtime: int | None = None
    optimized_runtime: dict[str, int | None] = {}
    is_correct: dict[str, bool] = {}
    codeflash_version: str | None = None
    optimized_line_profiler_results: dict[str, str] = {}
    metadata: dict[str, Any] = {}
    optimizations_post: dict[str, str] = {}


class ExplainRequest(_Body):
    trace_id: str
    source_code: str
    optimized_code: str
    original_line_profiler_results: str = ""
    optimized_line_profiler_results: str = ""
    original_code_runtime: str = ""
    optimized_code_runtime: str = ""
    speedup: str = ""
    annotated_tests: str = ""
    optimization_id: str = ""
    original_explanation: str = ""
    dependency_code: str = ""
    original_throughput: str | None = None
    optimized_throughput: str | None = None
    throughput_improvement: str | None = None
    function_references: str | None = None
    acceptance_reason: str | None = None
    original_concurrency_ratio: str | None = None
    optimized_concurrency_ratio: str | None = None
    concurrency_improvement: str | None = None
    codeflash_version: str | None = None
    call_sequence: int | None = None


class ReviewRequest(_Body):
    original_code: str
    optimized_code: str
    explanation: str = ""
    existing_tests: str = ""
    generated_tests: str = ""
    trace_id: str
    coverage_message: str = ""
    replay_tests: str = ""
    speedup: str = ""
    loop_count: int | None = None
    benchmark_details: list[dict[str, Any]] | None = None
    optimized_runtime: str = ""
    original_runtime: str = ""
    codeflash_version: str | None = None
    calling_fn_details: str = ""
    language: str = "python"
    language_version: str | None = None
    call_sequence: int | None = None


class MarkSuccessRequest(_Body):
    trace_id: str
    is_optimization_found: bool = True

"""The AI pipeline of the reference backend: assemble a prompt, ask the LLM
(through the official ``openai`` SDK), parse the completion. Each step is a
span (``otel_run.stage``); the LLM call itself is a GenAI client span from the
official OpenAI instrumentation, over an HTTP span from the httpx one."""

from __future__ import annotations

import ast
import re
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from otel_run import stage

CODE_BLOCK = re.compile(r"```(\w+)(?::([^\n]+))?\n(.*?)\n```", re.DOTALL)
REVIEW = re.compile(r"\b(high|medium|low)\b", re.IGNORECASE)

SYSTEM = {
    "optimize": "You are codeflash's optimizer. TASK: optimize. Rewrite the code so it runs faster and behaves "
    "exactly the same. Answer with the complete optimized code in fenced ```python:<path> blocks, then explain.",
    "optimize-line-profiler": "You are codeflash's optimizer. TASK: optimize-line-profiler. Use the line profile "
    "to find the hot lines; answer in the optimize task's format.",
    "refinement": "You are codeflash's optimizer. TASK: refinement. Make an already optimized candidate simpler or "
    "faster without changing behaviour; answer in the optimize task's format.",
    "code_repair": "You are codeflash's optimizer. TASK: code-repair. The candidate changed behaviour; fix it.",
    "adaptive_optimize": "You are codeflash's optimizer. TASK: adaptive-optimize. Improve on the candidates so far.",
    "testgen": "You write regression tests. TASK: testgen. Write pytest tests that pin down the behaviour of the "
    "function, with inputs large enough to time it. Answer with one ```python block.",
    "rank": "You rank code changes. TASK: rank. Answer with the indices of the diffs, best first, comma-separated.",
    "explain": "You explain optimizations to developers. TASK: explain.",
    "optimization_review": "You review optimizations before they are merged. TASK: review. Answer 'Review: high', "
    "'Review: medium' or 'Review: low', then why.",
}


@dataclass
class Completion:
    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int


# ----------------------------------------------------------------- the LLM

_client: Any = None
_client_lock = threading.Lock()


def llm() -> Any:
    """One OpenAI client for the process (its connection pool is reused)."""
    global _client
    with _client_lock:
        if _client is None:
            from openai import OpenAI

            _client = OpenAI(base_url=settings.LLM_BASE_URL, api_key=settings.LLM_API_KEY, timeout=600)
        return _client


def complete(task: str, user: str, *, stream: bool = False) -> Completion:
    """Ask the LLM. Streams when ``stream`` (time to first token is recorded)."""
    messages = [{"role": "system", "content": SYSTEM[task]}, {"role": "user", "content": user}]
    client = llm()
    if not stream:
        response = client.chat.completions.create(model=settings.LLM_MODEL, messages=messages)
        usage = response.usage
        return Completion(
            response.choices[0].message.content or "",
            response.model,
            usage.prompt_tokens if usage else 0,
            usage.completion_tokens if usage else 0,
        )
    with stage("llm.stream", **{"gen_ai.request.model": settings.LLM_MODEL}) as span:
        start = time.perf_counter()
        first: float | None = None
        parts: list[str] = []
        model, prompt_tokens, completion_tokens = settings.LLM_MODEL, 0, 0
        chunks = client.chat.completions.create(
            model=settings.LLM_MODEL, messages=messages, stream=True, stream_options={"include_usage": True}
        )
        for chunk in chunks:
            if chunk.choices and chunk.choices[0].delta.content:
                if first is None:
                    first = time.perf_counter()
                parts.append(chunk.choices[0].delta.content)
            if chunk.usage:
                prompt_tokens, completion_tokens = chunk.usage.prompt_tokens, chunk.usage.completion_tokens
            model = chunk.model or model
        if first is not None:
            span.set_attribute("gen_ai.response.time_to_first_chunk", first - start)
        return Completion("".join(parts), model, prompt_tokens, completion_tokens)


# ------------------------------------------------------------ the prompts


def optimize_prompt(source_code: str, dependency_code: str, language_version: str | None, extra: str = "") -> str:
    parts = [f"Python {language_version or ''}".strip(), "Code to optimize:", source_code]
    if dependency_code:
        parts += ["Read-only context (do not change):", dependency_code]
    if extra:
        parts.append(extra)
    return "\n\n".join(parts)


def testgen_prompt(request: Any) -> str:
    return "\n\n".join(
        [
            f"Function: {request.qualified_name or request.function_to_optimize.function_name}",
            f"Module: {request.module_path}  (import it from there)",
            f"Test framework: {request.test_framework}; each test must finish within {request.test_timeout} s.",
            f"Variant: {request.test_index}",
            request.source_code_being_tested,
        ]
    )


# ------------------------------------------------------------ the parsing


def candidates(completion: Completion, default_path: str | None, parent_id: str | None = None) -> list[dict[str, Any]]:
    """Code blocks of a completion as codeflash candidates (one candidate with
    all blocks: a change may touch several files); none if it proposes nothing."""
    blocks = []
    for language, path, code in CODE_BLOCK.findall(completion.text):
        if language.lower() not in ("python", "py"):
            continue
        if not _parses(code):
            continue
        path = (path or default_path or "").strip()
        blocks.append(f"```python:{path}\n{code}\n```" if path else f"```python\n{code}\n```")
    if not blocks:
        return []
    explanation = CODE_BLOCK.sub("", completion.text).strip() or "Optimized."
    return [
        {
            "source_code": "\n".join(blocks),
            "explanation": explanation,
            "optimization_id": str(uuid.uuid4()),
            "parent_id": parent_id,
            "model": completion.model,
        }
    ]


def first_path(markdown: str) -> str | None:
    match = CODE_BLOCK.search(markdown)
    return match.group(2).strip() if match and match.group(2) else None


def test_source(completion: Completion) -> str | None:
    for language, _path, code in CODE_BLOCK.findall(completion.text):
        if language.lower() in ("python", "py") and _parses(code):
            return str(code)
    return None


def ranking(completion: Completion, count: int) -> list[int] | None:
    found = [int(n) for n in re.findall(r"\d+", completion.text) if int(n) < count]
    order = list(dict.fromkeys(found))
    return order if len(order) == count else None


def review(completion: Completion) -> tuple[str, str]:
    match = REVIEW.search(completion.text)
    return (match.group(1).lower(), completion.text.strip()) if match else ("", "")


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except SyntaxError:
        return False
    return True


# ------------------------------------------------ instrumenting the tests

_instrument_lock = threading.Lock()
_server_tmp: str | None = None


def instrument_tests(test_src: str, request: Any) -> tuple[str, str]:
    """The generated tests, instrumented for codeflash's behaviour and
    performance runs, as codeflash-internal does: with codeflash's own
    instrumenter (``inject_profiling_into_existing_test``). Its temp directory
    is process-global and made lazily (not thread-safe), hence the lock."""
    global _server_tmp
    from codeflash.code_utils.code_utils import get_run_tmp_file
    from codeflash.code_utils.instrument_existing_tests import inject_profiling_into_existing_test
    from codeflash.models.function_types import FunctionParent, FunctionToOptimize
    from codeflash.models.models import CodePosition, TestingMode

    fto_in = request.function_to_optimize
    fto = FunctionToOptimize(
        function_name=fto_in.function_name,
        file_path=Path(fto_in.file_path),
        parents=[FunctionParent(name=p["name"], type=p["type"]) for p in fto_in.parents],
        starting_line=fto_in.starting_line,
        ending_line=fto_in.ending_line,
        is_async=fto_in.is_async,
        is_method=fto_in.is_method,
        language=fto_in.language,
    )
    name = fto.function_name
    positions = [
        CodePosition(line_no=node.lineno, col_no=node.col_offset)
        for node in ast.walk(ast.parse(test_src))
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Name) and node.func.id == name)
            or (isinstance(node.func, ast.Attribute) and node.func.attr == name)
        )
    ]
    with _instrument_lock, tempfile.TemporaryDirectory() as tmp:
        if _server_tmp is None:
            _server_tmp = get_run_tmp_file(Path()).as_posix()
        root = Path(tmp)
        test_file = root / (request.test_module_path.replace(".", "/") + ".py")
        test_file.parent.mkdir(parents=True, exist_ok=True)
        test_file.write_text(test_src, encoding="utf-8")
        ok_b, behavior = inject_profiling_into_existing_test(test_file, positions, fto, root, TestingMode.BEHAVIOR)
        ok_p, perf = inject_profiling_into_existing_test(test_file, positions, fto, root, TestingMode.PERFORMANCE)
    if not (ok_b and ok_p and behavior and perf):
        raise ValueError("the generated tests could not be instrumented")
    placeholder = "{codeflash_run_tmp_dir_client_side}"
    return behavior.replace(_server_tmp, placeholder), perf.replace(_server_tmp, placeholder)

"""A merged trace as one OTLP JSON ``ExportTraceServiceRequest`` (the protobuf
JSON mapping with hex ids, as the OTLP specification and Tempo's API use)."""

from __future__ import annotations

from typing import Any

from otel_run.store._model import Span, Trace


def to_otlp_json(trace: Trace) -> dict[str, Any]:
    resources: dict[str, tuple[Any, dict[tuple[str, str | None], list[dict[str, Any]]]]] = {}
    for span in sorted(trace.spans, key=lambda s: s.start_ns):
        _resource, scopes = resources.setdefault(span.resource.key, (span.resource, {}))
        scopes.setdefault((span.scope_name, span.scope_version), []).append(_span(span))
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": encode_attributes(resource.attributes)},
                "scopeSpans": [
                    {"scope": _scope(name, version), "spans": spans} for (name, version), spans in scopes.items()
                ],
            }
            for resource, scopes in resources.values()
        ]
    }


def _scope(name: str, version: str | None) -> dict[str, str]:
    return {"name": name, "version": version} if version else {"name": name}


def _span(span: Span) -> dict[str, Any]:
    out: dict[str, Any] = {"traceId": span.trace_id, "spanId": span.span_id}
    if span.parent_id:
        out["parentSpanId"] = span.parent_id
    if span.trace_state:
        out["traceState"] = span.trace_state
    out.update(
        {
            "name": span.name,
            "kind": span.kind,
            "startTimeUnixNano": str(span.start_ns),
            "endTimeUnixNano": str(span.end_ns),
            "attributes": encode_attributes(span.attributes),
        }
    )
    if span.events:
        out["events"] = [
            {"timeUnixNano": str(e.time_ns), "name": e.name, "attributes": encode_attributes(e.attributes)}
            for e in span.events
        ]
    if span.links:
        out["links"] = [
            {"traceId": link.trace_id, "spanId": link.span_id, "attributes": encode_attributes(link.attributes)}
            for link in span.links
        ]
    if span.status_code:
        out["status"] = (
            {"code": span.status_code, "message": span.status_message}
            if span.status_message
            else {"code": span.status_code}
        )
    return out


def encode_attributes(attributes: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": key, "value": encode_value(value)} for key, value in attributes.items()]


def encode_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [encode_value(v) for v in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": encode_attributes(value)}}
    return {"stringValue": str(value)}

"""Where this server's traces go: Opik when configured, else the warehouse."""

import os

from twin_resources import Warehouse
from twin_serving.tracing import OpikTraces, TraceRecorder, WarehouseTraces, opik_configured


def open_trace_recorder(warehouse: Warehouse) -> TraceRecorder:
    """`warehouse`: the configured resource; the recorder's thread opens its own connection."""
    if opik_configured():
        return TraceRecorder(OpikTraces(os.environ.get("OPIK_PROJECT_NAME", "llm-twin")))
    with warehouse.process_config_and_initialize_cm() as resolved:  # EnvVars resolved
        return TraceRecorder(WarehouseTraces(Warehouse(uri=resolved.uri, home=resolved.home,
                                                       database=resolved.database)))

"""Where this server's traces go: Opik when configured, else the warehouse."""

from twin_resources.settings import load_settings
from twin_resources.warehouse import Warehouse
from twin_serving.tracing import OpikTraces, TraceRecorder, WarehouseTraces, opik_configured


def open_trace_recorder(warehouse: Warehouse) -> TraceRecorder:
    """`warehouse`: the configured resource; the recorder's thread opens its own connection."""
    if opik_configured():
        return TraceRecorder(OpikTraces(load_settings().opik_project_name))
    with warehouse.process_config_and_initialize_cm() as resolved:  # EnvVars resolved
        return TraceRecorder(WarehouseTraces(Warehouse(uri=resolved.uri, home=resolved.home,
                                                       database=resolved.database)))

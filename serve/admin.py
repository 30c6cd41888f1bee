"""Admin routes: load and unload LoRA adapters at runtime, behind the admin key.

Adapters load only from the configured adapter directory (`--adapter-dir`): the request names
a folder relative to it, and a path that resolves outside it is refused, as are pickle
weights. Loading runs on the engine's worker between two steps. Unloading first stops new
requests for the adapter, waits for its running requests to finish, then frees it.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from tuneloop.errors import TuneloopError
from tuneloop.serve.adapter_folder import check_name, inside
from tuneloop.serve.auth import require_admin_key
from tuneloop.serve.engine import RETRY_COMMAND, Engine
from tuneloop.serve.errors import Conflict, InvalidRequest, ModelNotServed, PermissionDenied
from tuneloop.serve.lanes import Lane
from tuneloop.serve.protocol import LoadAdapterRequest
from tuneloop.serve.routes import ERRORS, EngineDep
from tuneloop.serve.state import StateDep

admin = APIRouter(prefix="/admin", dependencies=[Depends(require_admin_key)], responses=ERRORS)


@admin.get("/adapters")
async def list_adapters(engine: EngineDep):
    """Loaded adapters, per model that can take them."""
    return {
        "data": [
            {"model": lane.name, "adapters": lane.backend.adapters}
            for lane in engine.lanes
            if lane.backend.info.backend == "torch"
        ]
    }


@admin.post("/adapters", status_code=201)
async def load_adapter(
    body: LoadAdapterRequest,
    engine: EngineDep,
    state: StateDep,
):
    """Load an adapter folder from the adapter directory and serve it under `name`."""
    root = state.settings.adapter_dir
    if root is None:
        raise PermissionDenied(
            "runtime adapter loading is off: start the server with --adapter-dir"
        )
    try:
        name = check_name(body.name)
        folder = inside(root, body.path)
    except TuneloopError as exc:
        raise InvalidRequest(str(exc), param="path") from exc
    if name in engine.models.ids():
        raise Conflict(f"a model named {name!r} is already served", param="name")
    lane = _torch_lane(engine, body.model)
    try:
        await engine.run_on_worker(lambda: lane.backend.load_adapter(name, folder))
    except TuneloopError as exc:
        raise InvalidRequest(str(exc), param="path") from exc
    engine.models.not_loaded.pop(name, None)
    info = lane.backend.info
    state.metrics.add_model(
        lane.name, name, {"base": lane.name, "backend": info.backend, "precision": info.precision}
    )
    return {"id": name, "model": lane.name, "status": "loaded"}


@admin.delete("/adapters/{name}")
async def unload_adapter(name: str, engine: EngineDep, state: StateDep):
    """Stop serving an adapter: new requests get 404, running ones finish, then it is freed."""
    lane, adapter = engine.models.resolve(name)
    if adapter is None:
        raise InvalidRequest(f"{name!r} is a model, not an adapter", param="name")
    lane.retiring.add(adapter)

    def unload():
        if lane.scheduler.uses_adapter(adapter):
            return RETRY_COMMAND
        lane.backend.unload_adapter(adapter)
        lane.retiring.discard(adapter)
        return None

    await engine.run_on_worker(unload)
    state.metrics.remove_adapter(lane.name, adapter)
    return {"id": name, "status": "unloaded"}


def _torch_lane(engine: Engine, model: str | None) -> Lane:
    candidates = [lane for lane in engine.lanes if lane.backend.info.backend == "torch"]
    if model is not None:
        candidates = [lane for lane in candidates if lane.name == model]
    if not candidates:
        raise ModelNotServed(
            f"no torch model {'named ' + repr(model) + ' ' if model else ''}is loaded to take "
            "adapters",
            param="model",
        )
    return candidates[0]

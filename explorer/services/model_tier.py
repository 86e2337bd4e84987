"""The models on Ray Serve: ``python app.py --ray-serve`` runs the identify calls on replicas of a Serve deployment
(each replica loads the models from the same settings), and the Gradio front end calls them through a handle.

In a replica, ``@serve.batch`` gathers the calls that arrive together, and each runs ``identify_photo`` on a thread
of its own, so the replica's batcher (``services.batching``) turns them into one forward pass per model and CAM
method, as in one process. A call whose replica dies (a crash, a node lost, ``ray.kill``) is sent once more, to a
replica that lives; when that fails too the caller is told, never left without an answer. A user's mistake (an
unreadable photo, an unknown model) comes back as the same ValueError as in one process."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from dataclasses import dataclass, replace

from explorer.services.identification import Identification, IdentifyRequest, identify_photo
from explorer.settings import Settings

log = logging.getLogger(__name__)
APP_NAME = "explorer_models"
DEPLOYMENT = "ModelTier"
LOST = "The model server lost this call twice (a replica stopped); nothing was identified. Please try again."
TIMEOUT_S = 300.0


class ModelTier:
    """The deployment's class: a replica's models, and its batched identify."""

    def __init__(self, settings: Settings):
        from explorer.services.resources import load_resources

        self.resources = load_resources(settings)

    async def identify(self, request: IdentifyRequest) -> Identification | Exception:
        """One call; Serve's batch handler below gathers the concurrent ones."""
        return await self.identify_batch(request)

    async def identify_batch(self, requests: list[IdentifyRequest]) -> list[Identification | Exception]:
        """Each request on its own thread (the replica's batcher gathers them into model batches). A call's failure
        is returned, not raised, so that it stays that call's own (Serve fails a whole batch that raises): a user's
        mistake as the same ValueError, anything else as a RuntimeError naming it."""
        calls = [asyncio.to_thread(identify_photo, self.resources, request) for request in requests]
        found = await asyncio.gather(*calls, return_exceptions=True)
        return [_returned(item) for item in found]


def _returned(item):
    """A call's answer as it travels back (plain exceptions pickle; a subclass's extra state may not)."""
    if isinstance(item, ValueError):
        return ValueError(str(item))
    if isinstance(item, BaseException):
        return RuntimeError(f"the model server failed on this call: {type(item).__name__}: {item}")
    return item


@dataclass
class RayTier:
    """The front end's side: a handle to the deployment, and the retry on a lost replica."""

    handle: object  # ray.serve.handle.DeploymentHandle
    replicas: int
    address: str

    def identify(self, request: IdentifyRequest) -> Identification:
        """``identify_photo`` on a replica. Raises ValueError with the user's message (their mistake, or LOST), or
        the RuntimeError of a call that failed on the replica."""
        from ray.exceptions import RayActorError  # a replica that died or cannot be reached

        for attempt in (1, 2):
            try:
                found = self.handle.identify.remote(request).result(timeout_s=TIMEOUT_S)
            except RayActorError as err:
                log.warning("identify call lost with its replica (attempt %d): %s", attempt, type(err).__name__)
                continue
            except TimeoutError:
                raise ValueError(
                    f"The model server did not answer within {TIMEOUT_S:.0f} s. Please try again."
                ) from None
            if isinstance(found, Exception):
                raise found
            return found
        raise ValueError(LOST)

    def close(self) -> None:
        """Disconnect from Ray; a local Ray started by this process stops with it (a cluster's replicas stay)."""
        import ray

        ray.shutdown()


def start_model_tier(settings: Settings) -> RayTier:
    """Connect to Ray (``settings.ray_address``: a cluster's address, or none for a local Ray started here), run
    the deployment with ``settings.tier_replicas`` replicas (each loads the models from ``settings``: this project
    must be installed and its folders must exist on every node), and return the front end's handle."""
    try:
        import ray
        from ray import serve
    except ImportError:
        raise ValueError(
            "--ray-serve needs Ray Serve: pip install 'ray[serve]==2.60.0' (requirements-tools.txt)"
        ) from None
    check_ray_address(settings.ray_address)
    if not ray.is_initialized():
        ray.init(
            address=settings.ray_address or None,
            include_dashboard=False,
            log_to_driver=False,
        )
    serve.start(proxy_location="Disabled")  # the front end is Gradio; replicas are reached through the handle
    running = serve.status().applications.get(APP_NAME)
    if running is not None and running.status == "RUNNING":  # another front end deployed it: share its replicas
        log.info("model tier: attached to the running %s on Ray", APP_NAME)
        return RayTier(serve.get_app_handle(APP_NAME), settings.tier_replicas, ray.get_runtime_context().gcs_address)
    batched = serve.batch(max_batch_size=settings.max_batch, batch_wait_timeout_s=settings.batch_wait_ms / 1000)
    tier = type(DEPLOYMENT, (ModelTier,), {"identify_batch": batched(ModelTier.identify_batch)})
    deployment = serve.deployment(
        tier,
        name=DEPLOYMENT,
        num_replicas=settings.tier_replicas,
        max_ongoing_requests=4 * settings.max_batch,
        ray_actor_options={"num_cpus": 0},  # torch uses the node's cores; Ray's CPU count would cap the replicas
    )
    replica_settings = replace(settings, ray_serve=False, host="127.0.0.1")
    handle = serve.run(deployment.bind(replica_settings), name=APP_NAME, route_prefix=None)
    address = ray.get_runtime_context().gcs_address
    log.info("model tier: %d replicas of %s on Ray at %s", settings.tier_replicas, DEPLOYMENT, address)
    return RayTier(handle, settings.tier_replicas, address)


def stop_on_sigterm() -> None:
    """SIGTERM stops the server as Ctrl-C does (Gradio closes it, then ``RayTier.close``), in place of the handler
    Ray's core installs, which dumps a stack trace and aborts (exit 134)."""
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


def check_ray_address(address: str | None, timeout_s: float = 5.0) -> None:
    """ValueError, with a message for the user, unless ``address`` is none, 'auto' or a HOST:PORT that answers (Ray
    itself would retry an unreachable cluster for minutes without saying so)."""
    if address in (None, "", "auto"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--ray-address takes HOST:PORT (e.g. HEAD:6379) or 'auto', got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as err:
        raise ValueError(
            f"cannot reach the Ray cluster at {address} ({err}); is `ray start --head` running there, and is the "
            "port open?"
        ) from None

"""``tympan serve MODEL --engine ray --replicas N``: the versions' replicas on Ray Serve.

Each served version is one Ray Serve application (``tympan-NAME-vN-ROLE-PID``) whose one
deployment runs ``--replicas`` copies of ``Replica`` (``replica.py``): the embedded engine's
model code, batching and guard, each replica batching what reaches it. Ray Serve places the
replicas, routes each call to the less busy of two it picks, health-checks them and replaces
one that dies. This process answers HTTP with the same app as the embedded server (``app.py``) and
calls the replicas through Ray Serve handles (no Ray HTTP proxy is started); it keeps the
serving runs and the metrics (``fleet.py``).

**A replica that dies mid-request.** The call fails with Ray's actor error; the request is
sent again (to another replica, or to the one Ray Serve starts in its place) up to
``RETRIES`` times, and a request still unanswered is answered 503
(``ReplicaUnavailableError``); no call waits past the request timeout (then 503 too). So a
client gets an answer or an error status for every request it sent. Answering is free of
side effects in the replica (the store is written here), so sending a request again is safe.

**Which Ray.** Without ``--address`` the command starts a local Ray for itself (a small
object store, no dashboard, its own temporary folder, so it never joins or disturbs another
Ray on the machine) and stops it on exit. That Ray listens on loopback only: its node address
is 127.0.0.1 (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, Ray's own single-machine mode, under
which the GCS, the raylet, the workers and the agents bind to 127.0.0.1), and each replica
binds Ray Serve's inter-deployment gRPC server, which Ray Serve 2.60 puts on every interface
with no setting to change it, to 127.0.0.1 as well (``_serve_grpc_on_loopback``). Ray's
token authentication stays on, and the HTTP server listens on ``--host`` (127.0.0.1 by
default). With ``--address`` (``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``) it joins that
cluster, deploys its applications there and deletes them on exit, leaving the cluster
running; the cluster's nodes need tympan installed and a store they can read (PostgreSQL, a
``tympan server``, or a path they share).

Ray is imported in this module only, when the engine starts: ``tympan --help`` and the
embedded engine never load it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
import time
from typing import Any

import numpy as np

from tympan.errors import InvalidInputError, MissingDependencyError
from tympan.serve.config import ServingConfig
from tympan.serve.fleet import Fleet, ReplicaUnavailableError, Split
from tympan.serve.replica import Replica, Served

log = logging.getLogger("tympan.serve")
RETRIES = 2  # sends of a request again after its replica died
START_TIMEOUT = 180.0  # seconds for every replica to load its model
OBJECT_STORE_BYTES = 100 * 1024 * 1024  # a local Ray's object store: requests are small
_MISSING = "--engine ray needs Ray Serve: pip install 'tympan[serve-ray]'"
# Ray's single-machine mode: read when Ray is imported, by this process and each it starts
LOOPBACK_ONLY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


class ServeReplica(Replica):
    """The Ray Serve deployment's class: a ``Replica`` that reports its health and answers
    what it accepted when Ray Serve stops it."""

    def __init__(self, model: str, config: ServingConfig) -> None:
        _serve_grpc_on_loopback()
        super().__init__(model, config)

    def check_health(self) -> None:
        if not self.alive:
            raise RuntimeError("the replica's batch worker stopped")

    def __del__(self) -> None:  # Ray Serve's graceful shutdown of a replica
        self.close()


class RayCluster:
    """The Ray this server deploys to: started here (``address`` None) or joined."""

    def __init__(self, address: str | None, cpus: int) -> None:
        if address is None:
            os.environ.update(LOOPBACK_ONLY)  # before Ray is imported, and for its processes
        try:
            import ray
            from ray import serve
        except ImportError as exc:
            raise MissingDependencyError(_MISSING) from exc
        from tympan.study.executors.ray_cluster import check_reachable

        self.ray, self.serve = ray, serve
        self.started = address is None
        self._temp: str | None = None
        logging.getLogger("ray.serve").setLevel(logging.ERROR)
        if ray.is_initialized():
            raise InvalidInputError("Ray is already initialized in this process")
        try:
            if self.started:
                # Ray reports usage to its makers unless told not to; a server started
                # for one model on loopback has nothing to report.
                os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
                self._temp = tempfile.mkdtemp(prefix="tyserve", dir="/tmp")  # short: socket paths
                ray.init(address="local", num_cpus=max(os.cpu_count() or 1, cpus),
                         object_store_memory=OBJECT_STORE_BYTES, include_dashboard=False,
                         _temp_dir=self._temp,
                         namespace=f"tympan-serve-{os.getpid()}", log_to_driver=False,
                         configure_logging=False)
            else:
                check_reachable(address, InvalidInputError)
                ray.init(address=address, log_to_driver=False, configure_logging=False)
            serve.start(proxy_location="Disabled")
        except (ConnectionError, RuntimeError, ValueError) as exc:
            self.close()
            where = address or "a new local Ray instance"
            raise InvalidInputError(f"cannot start Ray Serve on {where}: {exc}") from None
        except BaseException:
            self.close()
            raise

    @property
    def address(self) -> str:
        """The cluster's GCS address (``--address`` for another server to join it)."""
        return self.ray.get_runtime_context().gcs_address

    def deploy(self, apps: list[tuple[str, str, int]], config: ServingConfig
               ) -> list[Any]:
        """Deploy one application per (name, model URI, replicas); their handles, once every
        replica has loaded its model."""
        from ray.serve.api import RunTarget, run_many

        threads = config.threads  # (server.start's default: one, as replicas share the cores)
        settings = _replica_config(config)
        targets = []
        for name, uri, replicas in apps:
            deployment = self.serve.deployment(
                ServeReplica, name="replica", num_replicas=replicas,
                ray_actor_options={"num_cpus": threads},
                max_ongoing_requests=max(2 * config.batching.max_size, 8),
                health_check_period_s=2.0, health_check_timeout_s=30.0,
                graceful_shutdown_timeout_s=30.0, max_constructor_retry_count=1)
            targets.append(RunTarget(deployment.bind(uri, settings), name=name,
                                     route_prefix=None))
        names = [name for name, _, _ in apps]
        try:
            handles = run_many(targets, wait_for_applications_running=False)
        except RuntimeError as exc:
            reason = self._deploy_error(names) or _first_line(exc)
            raise InvalidInputError(f"the replicas did not start: {reason}") from None
        self._wait_running(names)
        return handles

    def _wait_running(self, names: list[str]) -> None:
        """Until every application runs; a clear error when one fails or when they do not
        run within ``START_TIMEOUT`` (e.g. a cluster without the CPUs the replicas reserve),
        never a wait without end."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            applications = self.serve.status().applications
            states = [str(getattr(applications.get(n), "status", "NOT_STARTED"))
                      for n in names]
            if all(s.endswith("RUNNING") for s in states):
                return
            if any(s.endswith(("DEPLOY_FAILED", "UNHEALTHY")) for s in states):
                reason = self._deploy_error(names) or "see the Ray Serve controller's log"
                raise InvalidInputError(f"the replicas did not start: {reason}")
            if time.monotonic() > deadline:
                pending = "; ".join(
                    d.message for n in names if n in applications
                    for d in applications[n].deployments.values() if d.message)
                raise InvalidInputError(
                    f"the replicas did not start within {START_TIMEOUT:g} s"
                    f"{': ' + pending if pending else ''} (each replica reserves --threads of "
                    "the cluster's CPUs)")
            time.sleep(0.25)

    def _deploy_error(self, names: list[str]) -> str | None:
        """The exception a replica's constructor raised (the last line of the traceback Ray
        Serve keeps as the deployment's message), without its module path."""
        try:
            applications = self.serve.status().applications
        except Exception:
            return None
        for name in names:
            app = applications.get(name)
            for deployment in (app.deployments.values() if app else []):
                lines = [x.strip() for x in (deployment.message or "").splitlines()
                         if x.strip()]
                if lines and deployment.status.value in ("DEPLOY_FAILED", "UNHEALTHY"):
                    kind, sep, message = lines[-1].partition(": ")
                    return message if sep and "." in kind else lines[-1]
        return None

    def delete(self, name: str) -> None:
        """Delete an application from a cluster that stays up (a local Ray goes down whole
        in ``close``, once the HTTP server has answered every accepted request)."""
        if not self.started and self.ray.is_initialized():
            self.serve.delete(name, _blocking=True)

    def close(self) -> None:
        """Stop the local Ray (or leave the cluster), remove its temporary folder."""
        try:
            if self.ray.is_initialized():
                self.ray.shutdown()
        finally:
            if self._temp is not None:
                shutil.rmtree(self._temp, ignore_errors=True)
                self._temp = None


class RayBackend:
    """A version's replicas on Ray Serve, called through a deployment handle."""

    def __init__(self, cluster: RayCluster, name: str, handle: Any, replicas: int) -> None:
        self.cluster, self.name, self.handle, self.replicas = cluster, name, handle, replicas
        self.address = cluster.address
        self._closed = False
        self._description: dict[str, Any] | None = None

    @property
    def alive(self) -> bool:
        return not self._closed

    def describe(self) -> dict[str, Any]:
        if self._description is None:
            self._description = self.handle.describe.remote().result(timeout_s=60)
        return self._description

    async def predict(self, wave: np.ndarray) -> Served:
        from ray.exceptions import ActorUnavailableError, RayActorError

        for attempt in range(RETRIES + 1):
            try:
                return await self.handle.predict.remote(wave)
            except (RayActorError, ActorUnavailableError) as exc:
                log.warning("a replica of %s was lost while answering (%s); %s", self.name,
                            _first_line(exc), "sending the request again"
                            if attempt < RETRIES else "giving up")
                lost = exc
            await asyncio.sleep(0.1 * (attempt + 1))
        raise ReplicaUnavailableError(
            f"the replicas that took this request died {RETRIES + 1} times "
            f"({_first_line(lost)}); retry later") from None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.cluster.delete(self.name)


def start(config: ServingConfig, split: Split | None) -> Fleet:
    """The fleet of ``config.model`` (and the split's challenger) on Ray Serve, with
    ``config.replicas`` replicas each, of ``config.threads`` threads (``server.start`` sets
    it)."""
    versions = 2 if split else 1
    cluster = RayCluster(config.address, cpus=versions * config.replicas * config.threads)

    def backends(uris: list[tuple[str, str]]) -> list[RayBackend]:
        names = [_app_name(uri, role) for role, uri in uris]
        try:
            handles = cluster.deploy([(n, uri, config.replicas)
                                      for n, (_, uri) in zip(names, uris, strict=True)], config)
        except BaseException:
            for name in names:  # on a cluster that stays up, leave nothing half-deployed
                with contextlib.suppress(Exception):
                    cluster.delete(name)
            raise
        return [RayBackend(cluster, n, h, config.replicas)
                for n, h in zip(names, handles, strict=True)]

    return Fleet.start(config, split, "ray", backends, config.request_timeout,
                       on_close=cluster.close)


def _serve_grpc_on_loopback() -> None:
    """In a replica of a Ray on 127.0.0.1: bind Ray Serve's inter-deployment gRPC server
    there too (Ray Serve 2.60 binds it to ``[::]:0``, every interface, unconditionally; it is
    started after the replica's constructor, which calls this). On a cluster's node, a no-op:
    other nodes must reach it."""
    import ray
    from ray.serve._private import replica

    if ray.util.get_node_ip_address() != "127.0.0.1":
        return
    bind = replica.add_port_to_grpc_server
    if getattr(bind, "loopback", False):
        return

    def on_loopback(server: Any, address: str) -> int:
        return bind(server, address.replace("[::]", "127.0.0.1", 1))

    on_loopback.loopback = True  # type: ignore[attr-defined]
    replica.add_port_to_grpc_server = on_loopback


def _app_name(uri: str, role: str) -> str:
    model, _, version = uri.removeprefix("models:/").rpartition("/")
    return f"tympan-{model}-v{version}-{role}-{os.getpid()}"


def _replica_config(config: ServingConfig) -> ServingConfig:
    """What a replica needs of ``config``: it records nothing (this process does)."""
    from dataclasses import replace

    return replace(config, record=False)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

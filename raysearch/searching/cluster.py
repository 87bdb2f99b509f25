"""The Ray cluster a search or a report runs in: started here or joined, checked, and what it
shares through the object store.

    with ray_cluster(ClusterOptions(cpus_per_trial=2), run_dir) as cluster:
        cluster.put_data(data)              # the dataset once, its test fold sealed
        cluster.put_teachers({64: saved})    # each teacher once, whatever the number of students
        trainable = cluster.trainable()     # the Tune trainable bound to the data and the shared

Teachers may be put after the trials started (a search's students open when its teacher search
ends): they reach the trials through a SharedObjects, a small actor holding their refs by name. A
teacher's cached embeddings are computed by the first student trial that needs them, with its own
resources, and shared through the same SharedObjects (nothing the driver waits for inside Tune's loop,
where finished trials' actors may hold every slot).

A local Ray is started unless `address` names a cluster to join; it listens on 127.0.0.1 only
(nothing outside the machine can reach it). On more than one node the
run directory must be visible from every node (probed, not guessed) unless it is a URI.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from raysearch.errors import UserError
from raysearch.searching.options import ClusterOptions
from raysearch.searching.rundir import RunDir
from raysearch.training.checkpoint import SavedNetwork

log = logging.getLogger(__name__)


class SharedObjects:
    """A Ray actor holding object refs by name (`teacher/64`, `cache/64/31/2.5/bf16`), so that a
    trial started before a ref existed still finds it. Refs travel inside lists: Ray would
    otherwise resolve a ref passed or returned at the top level.

    It also lets trials share what one of them computes (the teacher's cached embeddings): the
    first trial to `claim` a name computes it and `keep`s it here, owned by the shared, so it
    outlives that trial; the others wait for it. A claim whose holder stops beating (its process
    died) for STALE_SECONDS passes to the next trial that asks.
    """

    STALE_SECONDS = 60.0

    def __init__(self):
        self.refs: dict[str, object] = {}
        self.claims: dict[str, tuple[str, float]] = {}  # name -> (claimant, its last beat)

    def put(self, name: str, ref: list) -> None:
        self.refs[name] = ref[0]

    def get(self, name: str) -> list:
        return [self.refs.get(name)]

    def claim(self, name: str, claimant: str) -> list:
        """[ref] when `name` is on the shared; [True] when `claimant` is to compute it (nobody else
        is, or the one who was stopped beating); [False] while another computes it."""
        if name in self.refs:
            return [self.refs[name]]
        held = self.claims.get(name)
        now = time.monotonic()
        if held is None or held[0] == claimant or now - held[1] > self.STALE_SECONDS:
            self.claims[name] = (claimant, now)
            return [True]
        return [False]

    def beat(self, name: str, claimant: str) -> None:
        if self.claims.get(name, ("",))[0] == claimant:
            self.claims[name] = (claimant, time.monotonic())

    def drop(self, name: str, claimant: str) -> None:
        """The claimant gave up (its computation failed): the next trial that asks computes it."""
        if self.claims.get(name, ("",))[0] == claimant:
            del self.claims[name]

    def keep(self, name: str, value) -> None:
        """Put `value` in the object store, owned by the shared (it lives as long as the cluster)."""
        import ray

        self.refs[name] = ray.put(value)
        self.claims.pop(name, None)


class Cluster:
    """A started Ray: the options it was started with and the refs it shares with trials."""

    def __init__(self, options: ClusterOptions, max_concurrent: int):
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self.options = options
        self.max_concurrent = max_concurrent
        self.data_ref = None
        self.teacher_refs: dict[int, object] = {}
        # on the driver's node: a worker node may leave the cluster while the search runs
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        self.shared = ray.remote(num_cpus=0)(SharedObjects).options(scheduling_strategy=here).remote()

    def _share(self, name: str, ref) -> None:
        import ray

        ray.get(self.shared.put.remote(name, [ref]))  # on the shared before any trial looks

    def describe(self) -> str:
        """The cluster and what each trial gets, in words (said at start)."""
        import ray

        total = ray.cluster_resources()
        nodes = sum(n["Alive"] for n in ray.nodes())
        where = f"Ray cluster at {self.options.address}" if self.options.address else "local Ray"
        return (
            f"{where}: {nodes} node(s), {total.get('CPU', 0):g} CPUs, {total.get('GPU', 0):g} GPUs; "
            f"each trial {self.options.cpus_per_trial:g} CPU, {self.options.gpus_per_trial:g} GPU"
        )

    @property
    def device(self) -> str:
        """The device trials train on."""
        return "cuda" if self.options.gpus_per_trial > 0 else "cpu"

    def trial_constants(self) -> dict:
        """What every trial's config carries from the cluster: its threads and device."""
        return {"threads": max(1, int(self.options.cpus_per_trial)), "device": self.device}

    def put_data(self, data) -> None:
        """Put the dataset in the object store once (every trial maps it zero-copy), its test fold
        sealed: no trial may read it, since trials are where configurations are chosen."""
        import ray

        self.data_ref = ray.put(replace(data, test_sealed=True))

    def put_teachers(self, teachers: dict[int, SavedNetwork]) -> None:
        """Each teacher (by embedding size) into the object store once, without its history."""
        import ray

        for size, saved in teachers.items():
            self.teacher_refs[int(size)] = ray.put(replace(saved, history=[], scores={}))
            self._share(f"teacher/{int(size)}", self.teacher_refs[int(size)])

    def trainable(self):
        """The Tune trainable: train_trial bound to the data and the shared objects, with each
        trial's resources."""
        from ray import tune

        from raysearch.searching.trainable import train_trial

        resources = {"cpu": self.options.cpus_per_trial, "gpu": self.options.gpus_per_trial}
        return tune.with_resources(
            tune.with_parameters(train_trial, data=self.data_ref, shared=self.shared), resources
        )


def check_shared_storage(path: Path) -> int:
    """On more than one node, every node must see `path` (Tune syncs trial results there).

    Probed, not guessed: the driver writes a token under `path` and a zero-CPU task pinned to
    each alive node reads it back. Returns the number of nodes; raises UserError naming the nodes
    that cannot see the path.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n["Alive"]]
    if len(nodes) <= 1:
        return len(nodes)
    token = uuid.uuid4().hex
    path.mkdir(parents=True, exist_ok=True)
    marker = path / f".storage-probe-{token}"
    marker.write_text(token)

    @ray.remote(num_cpus=0)
    def read_marker(name: str) -> str:
        p = Path(name)
        return p.read_text() if p.is_file() else ""

    try:
        seen = ray.get(
            [
                read_marker.options(
                    scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
                ).remote(str(marker))
                for n in nodes
            ],
            timeout=120,
        )
    finally:
        marker.unlink(missing_ok=True)
    blind = [n["NodeManagerAddress"] for n, got in zip(nodes, seen, strict=True) if got != token]
    if blind:
        raise UserError(
            f"--storage {path.parent}: not visible from {len(blind)} of {len(nodes)} nodes "
            f"({', '.join(blind)}); on a multi-node cluster use a filesystem shared by every node "
            f"(NFS) at the same path"
        )
    return len(nodes)


# Where `ray up` leaves the cluster's config on its head (the driver of a `ray job submit` runs
# there): its node types say what the autoscaler can still add.
BOOTSTRAP_CONFIG = "~/ray_bootstrap_config.yaml"


def unmet_request(options: ClusterOptions, nodes: list[dict], node_types: dict | None = None) -> str | None:
    """What no node can give one trial, or None: `nodes` are the live nodes' resources,
    `node_types` an autoscaler's available_node_types (each with its `resources`)."""
    offers = list(nodes) + [t.get("resources") or {} for t in (node_types or {}).values()]
    cpus = max((o.get("CPU", 0) for o in offers), default=0)
    gpus = max((o.get("GPU", 0) for o in offers), default=0)
    where = "no node" + (" and no node type the autoscaler can add" if node_types else "")
    if options.cpus_per_trial > cpus:
        return f"--cpus-per-trial {options.cpus_per_trial:g}: {where} has that many; the largest has {cpus:g}"
    if options.gpus_per_trial > gpus:
        if not gpus and not node_types and not options.address:
            return f"--gpus-per-trial {options.gpus_per_trial:g}: this machine has no GPU"
        return f"--gpus-per-trial {options.gpus_per_trial:g}: {where} has that many; the largest has {gpus:g}"
    return None


def check_requests(options: ClusterOptions) -> None:
    """A trial's request must fit on one node, or Tune leaves it PENDING forever: refuse at once.
    On a joined cluster the node types its autoscaler can add count too (BOOTSTRAP_CONFIG); a
    cluster without that file is judged by the nodes it has."""
    import ray
    import yaml

    nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
    node_types = None
    config = Path(BOOTSTRAP_CONFIG).expanduser()
    if options.address and config.is_file():
        node_types = (yaml.safe_load(config.read_text()) or {}).get("available_node_types")
    problem = unmet_request(options, nodes, node_types)
    if problem:
        hint = (
            f" (its autoscaler's node types are read from {BOOTSTRAP_CONFIG} on the head: submit the "
            f"search there with `ray job submit`)"
            if options.address and node_types is None
            else ""
        )
        raise UserError(problem + hint)


@contextmanager
def ray_cluster(options: ClusterOptions, run_dir: RunDir) -> Iterator[Cluster]:
    """Start (or join) Ray for one run; check that every node sees a local RUN_DIR; shut down after."""
    import logging

    import ray

    from raysearch.searching.ray_compat import start_local_ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # Ray's usage report: off unless asked
    level = logging.INFO if options.verbose else logging.ERROR
    if not options.verbose:
        # Tune's own hints (Tuner.restore, a TensorBoard path under /tmp/ray) contradict ours, and
        # its newer console prints an experiment box whatever the verbosity: the older one is quiet
        os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
        for name in ("ray", "ray.tune", "ray.train", "ray.air"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
    temp = None
    if options.address:
        ray.init(address=options.address, log_to_driver=False, logging_level=level)
    else:
        # the local Ray's sockets and logs in a folder of this run's (0700), removed at the end
        temp = tempfile.mkdtemp(prefix="rs-", dir=os.environ.get("RAY_TMPDIR") or None)
        start_local_ray(options.num_cpus, level, os.path.join(temp, "ray"))  # Ray opens its own to all
    try:
        check_requests(options)
        if run_dir.uri is None:
            check_shared_storage(run_dir.path)
        cpus = ray.cluster_resources().get("CPU", 1)
        max_concurrent = options.max_concurrent or max(1, int(cpus // max(options.cpus_per_trial, 1e-9)))
        yield Cluster(options, max_concurrent)
    finally:
        ray.shutdown()
        if temp is not None and not options.verbose:  # --verbose keeps Ray's logs
            shutil.rmtree(temp, ignore_errors=True)
        elif temp is not None:
            log.info(f"Ray's logs: {temp}")

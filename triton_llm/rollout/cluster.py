"""The effects of a rollout: the Kubernetes API (official Python client) and the ``helm`` binary.

:func:`connect` builds an API client from a kubeconfig (or the pod's service account);
:class:`Cluster` reads the release's LeaderWorkerSet and its pods, and reaches a leader's Triton through
the API server's pod proxy (``/api/v1/namespaces/<ns>/pods/<pod>:<port>/proxy/...``), so the smoke prompt
needs no port-forward. :class:`ClusterEffects` implements :class:`~triton_llm.rollout.plan.Effects`.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from triton_llm.errors import NotFoundError, RolloutError, UsageError
from triton_llm.rollout.plan import LWS_GROUP_INDEX_LABEL, LWS_NAME_LABEL, LwsState, lws_state
from triton_llm.rollout.readiness import group_problem, leader_name

LWS_GROUP = "leaderworkerset.x-k8s.io"
LWS_VERSION = "v1"
LWS_PLURAL = "leaderworkersets"
SMOKE_MODEL = "ensemble"


def connect(*, kubeconfig: str | None = None, context: str | None = None) -> tuple[Any, str]:
    """An API client and the namespace of the kubeconfig's context (``default`` if it names none).

    Uses the in-cluster service account when no kubeconfig is found.

    Raises:
        UsageError: the ``k8s`` extra is missing, or neither a kubeconfig nor an in-cluster service
            account is available.
    """
    try:
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException
    except ImportError:
        raise UsageError(
            "the Kubernetes client is not installed", hint="pip install 'triton-llm[k8s]'"
        ) from None

    try:
        api = config.new_client_from_config(config_file=kubeconfig, context=context)
        _, active = config.list_kube_config_contexts(config_file=kubeconfig)
        if context:
            contexts, _ = config.list_kube_config_contexts(config_file=kubeconfig)
            active = next((c for c in contexts if c["name"] == context), active)
        return api, (active.get("context") or {}).get("namespace") or "default"
    except (ConfigException, FileNotFoundError) as first:
        if kubeconfig:
            raise UsageError(
                f"kubeconfig {kubeconfig}: {first}", field="--kubeconfig", value=kubeconfig
            ) from None
        try:
            config.load_incluster_config()
        except ConfigException:
            raise UsageError(
                f"no Kubernetes credentials: {first}",
                hint="set KUBECONFIG or --kubeconfig, or run inside a pod with a service account",
            ) from None
        return client.ApiClient(), "default"


def _message(body: Any) -> str:
    """The ``message`` of a Kubernetes ``Status`` body, else the body itself (shortened)."""
    text = body.decode(errors="replace") if isinstance(body, bytes) else str(body or "")
    try:
        decoded = json.loads(text)
    except ValueError:
        return text[:500]
    return (
        str(decoded.get("message") or decoded.get("error") or text)[:500]
        if isinstance(decoded, dict)
        else text[:500]
    )


@dataclass
class Cluster:
    """Read-only views of one namespace through the Kubernetes API, plus the pod proxy."""

    api: Any  # kubernetes.client.ApiClient
    namespace: str

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return fn()
        except ApiException as e:
            raise RolloutError(
                f"{what}: the API server answered {e.status} {e.reason}: {_message(e.body)}"
            ) from None
        except HTTPError as e:
            raise RolloutError(f"{what}: the API server cannot be reached ({e})", retryable=True) from None

    def release_lws(self, release: str) -> LwsState:
        """The LeaderWorkerSet of a Helm release (label ``app.kubernetes.io/instance``).

        Raises:
            NotFoundError: no LeaderWorkerSet of that release in the namespace (or several).
        """
        from kubernetes import client

        api = client.CustomObjectsApi(self.api)
        found = self._call(
            f"listing LeaderWorkerSets in {self.namespace}",
            lambda: api.list_namespaced_custom_object(
                LWS_GROUP, LWS_VERSION, self.namespace, LWS_PLURAL,
                label_selector=f"app.kubernetes.io/instance={release}",
            ),
        )  # fmt: skip
        items = found.get("items") or []
        if len(items) != 1:
            names = [i["metadata"]["name"] for i in items]
            raise NotFoundError(
                f"release {release!r} has {len(items)} LeaderWorkerSets in namespace "
                f"{self.namespace} {names}",
                key=release,
                hint="check --release and --namespace; rollout needs the chart's workload.kind=lws",
            )
        return lws_state(items[0])

    def group_pods(self, lws: str, group: int | None = None) -> list[dict[str, Any]]:
        """Pods of the LeaderWorkerSet (of one group when given), as API JSON."""
        from kubernetes import client

        selector = f"{LWS_NAME_LABEL}={lws}"
        if group is not None:
            selector += f",{LWS_GROUP_INDEX_LABEL}={group}"
        core = client.CoreV1Api(self.api)
        raw = self._call(
            f"listing pods {selector}",
            lambda: core.list_namespaced_pod(self.namespace, label_selector=selector, _preload_content=False),
        )
        return list(json.loads(raw.data).get("items") or [])

    def proxy_post(self, pod: str, port: int, path: str, body: dict[str, Any], *, timeout: float) -> Any:
        """POST JSON to ``pod:port/path`` through the API server's pod proxy; the decoded answer.

        Raises:
            RolloutError: the proxy or the pod answered an error status.
        """
        resource = f"/api/v1/namespaces/{self.namespace}/pods/{pod}:{port}/proxy/{path.lstrip('/')}"
        raw = self._call(
            f"POST {path} on pod {pod}",
            lambda: self.api.call_api(
                resource, "POST",
                header_params={"Content-Type": "application/json", "Accept": "application/json"},
                body=body, auth_settings=["BearerToken"], _preload_content=False,
                _return_http_data_only=True, _request_timeout=timeout,
            ),
        )  # fmt: skip
        return json.loads(raw.data)


class ClusterEffects:
    """Runs plan steps for real: helm, and gates polled through the Kubernetes API."""

    def __init__(
        self,
        cluster: Cluster,
        state: LwsState,
        *,
        helm: str = "helm",
        smoke_prompt: str = "Say hello.",
        smoke_max_tokens: int = 8,
        poll_seconds: float = 5.0,
        say: Callable[[str], None] = print,
    ) -> None:
        self.cluster = cluster
        self.state = state
        self.helm_bin = helm
        self.smoke_prompt = smoke_prompt
        self.smoke_max_tokens = smoke_max_tokens
        self.poll_seconds = poll_seconds
        self.say = say

    def helm(self, argv: Sequence[str]) -> None:
        try:
            proc = subprocess.run([self.helm_bin, *argv], capture_output=True, text=True, check=False)
        except FileNotFoundError:
            raise UsageError(
                f"helm not found: {self.helm_bin}", field="--helm", value=self.helm_bin
            ) from None
        if proc.returncode != 0:
            raise RolloutError(f"helm {argv[0]} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")

    def _poll(self, what: str, check: Callable[[], str | None], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while True:
            try:
                problem = check()
            except RolloutError as e:
                if not e.retryable:
                    raise
                problem = str(e)
            if problem is None:
                return
            if problem != last:
                self.say(f"  waiting: {problem}")
                last = problem
            if time.monotonic() >= deadline:
                raise RolloutError(f"{what} not reached in {timeout:.0f}s: {problem}")
            time.sleep(self.poll_seconds)

    def await_group(self, group: int, *, key: str, timeout: float) -> None:
        self._poll(
            f"group {group} ready on {key[:12]}",
            lambda: group_problem(
                self.cluster.group_pods(self.state.name, group), group=group, size=self.state.size, key=key
            ),
            timeout,
        )

    def smoke(self, group: int) -> str:
        leader = leader_name(self.cluster.group_pods(self.state.name, group))
        if leader is None:
            raise RolloutError(f"smoke test: group {group} has no leader pod")
        body = {"text_input": self.smoke_prompt, "max_tokens": self.smoke_max_tokens}
        answer = self.cluster.proxy_post(
            leader, self.state.http_port, f"v2/models/{SMOKE_MODEL}/generate", body, timeout=120
        )
        text = answer.get("text_output") if isinstance(answer, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise RolloutError(f"smoke test: leader {leader} answered no text: {json.dumps(answer)[:500]}")
        self.say(f"  smoke answer from {leader}: {text.strip()[:80]!r}")
        return text

    def await_gone(self, first_group: int, *, timeout: float) -> None:
        def surge_left() -> str | None:
            left = [
                p["metadata"]["name"]
                for p in self.cluster.group_pods(self.state.name)
                if int(p["metadata"]["labels"].get(LWS_GROUP_INDEX_LABEL, 0)) >= first_group
            ]
            return f"surge pods left: {', '.join(sorted(left))}" if left else None

        self._poll("surge groups removed", surge_left, timeout)

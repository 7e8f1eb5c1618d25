"""How a group's pods find and reach each other: names, DNS, NetworkPolicy (issue 9 review findings)."""

from __future__ import annotations

from tests.helm._render import RELEASE

FULLNAME = f"{RELEASE}-triton-llm"


def test_no_service_takes_the_leaderworkersets_name(render_ci) -> None:
    # The LWS controller creates the headless Service that gives pods their DNS names under the LWS's
    # name, and only when no Service has that name (CreateHeadlessServiceIfNotExists).
    for values in ("lws-roce-values.yaml", "ipoib-values.yaml", "autoscaling-values.yaml"):
        r = render_ci(values)
        lws = r.one("LeaderWorkerSet")["metadata"]["name"]
        assert lws == f"{FULLNAME}-lws"
        assert lws not in {s["metadata"]["name"] for s in r.of_kind("Service")}


def test_surge_and_autoscaled_groups_are_covered_by_the_group_network_policy(render_ci) -> None:
    # LWS numbers groups 0..replicas+maxSurge-1 during a rolling update, and the HPA adds more: a policy
    # keyed on group indices the chart enumerates leaves those groups unable to reach their own pods.
    for values in ("lws-roce-values.yaml", "autoscaling-values.yaml"):
        policies = render_ci(values).of_kind("NetworkPolicy")
        for policy in policies:
            text = str(policy)
            assert "group-index" not in text, policy["metadata"]["name"]
        assert any(p["metadata"]["name"] == f"{FULLNAME}-group" for p in policies)

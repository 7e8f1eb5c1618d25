"""``triton-llm rollout``: roll a new engine key over the chart's LeaderWorkerSet groups, gated; or undo."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rollout",
        help="roll a new engine key over the chart's groups, one gated group at a time (or --undo)",
        description="Replace the engine of a Helm release of the triton-llm chart (workload.kind=lws) "
        "group by group, without downtime: `helm upgrade` with the new key and the LeaderWorkerSet's "
        "partition at the group count (surge groups start on the new key), then one upgrade per group "
        "lowering the partition; every new group must be Ready on the new key and answer a smoke prompt "
        "before the next one is replaced. --undo rolls back to the key the last rollout replaced, with "
        "the same gates. A failed gate stops the rollout; re-running the command resumes it.",
        epilog="examples:\n"
        "  triton-llm rollout --key 3f2a...1b --release llama --namespace llm --dry-run\n"
        "  triton-llm rollout --key 3f2a...1b --release llama --namespace llm --max-surge 1\n"
        "  triton-llm rollout --undo --release llama --namespace llm",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--key", help="engine key to roll out (64 hex digits, as `triton-llm engine ls` prints)"
    )
    what.add_argument(
        "--undo",
        action="store_true",
        help="roll back to the key the last rollout replaced (gated the same way)",
    )
    p.add_argument("--release", default="triton-llm", help="Helm release name (default triton-llm)")
    p.add_argument("--namespace", "-n", help="namespace (default: the kubeconfig context's, else default)")
    p.add_argument(
        "--chart",
        default="helm/triton-llm",
        help="chart reference `helm upgrade` is given: a directory, packaged chart or oci:// URL "
        "(default helm/triton-llm, the checkout's chart)",
    )
    p.add_argument(
        "--max-surge",
        type=int,
        help="extra groups while rolling (needs free GPUs for them; default: the release's "
        "workload.lws.maxSurge)",
    )
    p.add_argument(
        "--allow-downtime",
        action="store_true",
        help="allow a rollout where no group serves for a while (one group and --max-surge 0)",
    )
    p.add_argument(
        "--group-timeout",
        type=float,
        default=3600.0,
        help="seconds each group may take to become Ready on the new key (default 3600: pull and load)",
    )
    p.add_argument("--smoke-prompt", default="Say hello.", help="prompt each new group must answer")
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    p.add_argument("--context", help="kubeconfig context (default: its current context)")
    p.add_argument("--helm", default="helm", help="helm binary (default: helm on PATH)")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="read the release's LeaderWorkerSet and print every step, changing nothing",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from triton_llm.rollout import plan_rollout, plan_undo, run_plan
    from triton_llm.rollout.cluster import Cluster, ClusterEffects, connect

    api, context_namespace = connect(kubeconfig=args.kubeconfig, context=args.context)
    cluster = Cluster(api=api, namespace=args.namespace or context_namespace)
    state = cluster.release_lws(args.release)
    kube_args = [
        *(["--kubeconfig", args.kubeconfig] if args.kubeconfig else []),
        *(["--kube-context", args.context] if args.context else []),
    ]
    if args.undo:
        plan = plan_undo(
            state,
            release=args.release,
            chart=args.chart,
            max_surge=args.max_surge,
            allow_downtime=args.allow_downtime,
            group_timeout=args.group_timeout,
            kube_args=kube_args,
        )
    else:
        plan = plan_rollout(
            state,
            args.key,
            release=args.release,
            chart=args.chart,
            max_surge=args.max_surge,
            allow_downtime=args.allow_downtime,
            group_timeout=args.group_timeout,
            kube_args=kube_args,
        )
    head = (
        f"release {plan.release} (LeaderWorkerSet {plan.namespace}/{plan.lws}, {plan.replicas} group(s), "
        f"maxSurge {plan.max_surge}): {plan.from_key[:12]} -> {plan.to_key[:12]}"
    )
    print(head)
    if not plan.steps:
        print(f"every group already serves {plan.to_key}: nothing to do")
        return 0
    if args.dry_run:
        print("\n".join(plan.describe()))
        return 0
    effects = ClusterEffects(cluster, state, helm=args.helm, smoke_prompt=args.smoke_prompt)
    run_plan(plan, effects)
    print(f"rolled out {plan.to_key} to {plan.replicas} group(s)")
    return 0

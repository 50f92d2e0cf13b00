"""`corit push`, `corit push-space` and `corit push-metric`: uploads to the Hugging Face Hub."""

import argparse
import sys

from .arguments import add_hub_arguments
from .values import repo_id


def add_push_command(subparsers: argparse._SubParsersAction) -> None:
    """`corit push MODEL_DIR --repo-id ORG/NAME`: upload a model folder with its rendered model card."""
    parser = subparsers.add_parser(
        "push",
        help="upload a model folder and its model card to the Hugging Face Hub",
        description=(
            "Upload a saved CoRIT model folder (safetensors weights, config, remote code, preprocessor, "
            "eval_results.json) to a Hub model repo, with a model card whose model-index holds the last "
            "`corit evaluate` results. Pickle files (*.bin, *.pt, ...) are never uploaded."
        ),
    )
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="a folder written by `corit train` or save_pretrained")
    parser.add_argument(
        "--repo-id", required=True, type=repo_id, metavar="ORG/NAME", help="the model repo (created if missing)"
    )
    parser.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing")
    parser.add_argument("--revision", metavar="BRANCH", help="commit to this branch (created from main if missing)")
    add_hub_arguments(parser)
    parser.set_defaults(handler=run_push)


def add_push_space_command(subparsers: argparse._SubParsersAction) -> None:
    """`corit push-space --repo-id ORG/NAME --model ORG/MODEL`: deploy the Gradio demo Space for a model repo."""
    parser = subparsers.add_parser(
        "push-space",
        help="create or update the Gradio demo Space for a model repo",
        description=(
            "Create or update a Gradio Space from spaces/corit-demo (with the corit_hf package next to its "
            "app.py) that serves the model repo given by --model, set in the README's models list and as the "
            "Space variable CORIT_MODEL."
        ),
    )
    parser.add_argument(
        "--repo-id", required=True, type=repo_id, metavar="ORG/NAME", help="the Space repo (created if missing)"
    )
    parser.add_argument(
        "--model", required=True, type=repo_id, metavar="ORG/MODEL", help="the model repo the Space serves"
    )
    parser.add_argument("--space-dir", help="the Space folder (default: spaces/corit-demo of this source checkout)")
    add_hub_arguments(parser)
    parser.set_defaults(handler=run_push_space)


def add_push_metric_command(subparsers: argparse._SubParsersAction) -> None:
    """`corit push-metric --repo-id ORG/NAME`: deploy the optimization_collapse metric as a Hub Space."""
    parser = subparsers.add_parser(
        "push-metric",
        help="create or update the optimization_collapse metric Space",
        description=(
            "Create or update a Gradio Space holding the optimization_collapse evaluate module (script, card, "
            "widget app.py, requirements.txt) next to a copy of the corit_hf package it imports, so "
            "evaluate.load('ORG/NAME') and the widget work without corit-hf being on a package index."
        ),
    )
    parser.add_argument(
        "--repo-id", required=True, type=repo_id, metavar="ORG/NAME", help="the Space repo (created if missing)"
    )
    add_hub_arguments(parser)
    parser.set_defaults(handler=run_push_metric)


def run_push(args: argparse.Namespace) -> int:
    """Handler of `corit push`."""
    from ..hub.push import push_model

    return report_hub_upload(
        args,
        lambda: push_model(
            args.model_dir,
            args.repo_id,
            private=args.private,
            create_pr=args.create_pr,
            revision=args.revision,
            token=args.token,
            endpoint=args.endpoint,
        ),
    )


def run_push_space(args: argparse.Namespace) -> int:
    """Handler of `corit push-space`."""
    from ..hub.push import push_space

    return report_hub_upload(
        args,
        lambda: push_space(
            args.repo_id,
            args.model,
            space_dir=args.space_dir,
            private=args.private,
            token=args.token,
            endpoint=args.endpoint,
        ),
    )


def run_push_metric(args: argparse.Namespace) -> int:
    """Handler of `corit push-metric`."""
    from ..hub.push import push_metric

    return report_hub_upload(
        args, lambda: push_metric(args.repo_id, private=args.private, token=args.token, endpoint=args.endpoint)
    )


def report_hub_upload(args: argparse.Namespace, upload) -> int:
    """Run an upload and print its URL; a Hub refusal or an unreachable Hub is a one-line error, exit code 1."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    try:
        url = upload()
    except HfHubHTTPError as error:
        print(f"corit {args.command}: error: {hub_error_message(error)}", file=sys.stderr)
        return 1
    except (ConnectionError, httpx2.TransportError) as error:  # offline mode, refused, timed out
        print(f"corit {args.command}: error: cannot reach the Hub: {error}", file=sys.stderr)
        return 1
    print(url)
    return 0


def hub_error_message(error) -> str:
    """The status line of a Hub error, the server's own message, and a hint for authentication failures."""
    from ..models.loading import first_line

    status = error.response.status_code if error.response is not None else None
    hints = {
        401: " Check --token (or HF_TOKEN / `hf auth login`).",
        403: " The token cannot write to this namespace or repo.",
    }
    summary = first_line(error)
    detail = f" ({error.server_message.strip()})" if error.server_message else ""
    return f"the Hub refused the request: {summary}{detail}.{hints.get(status, '')}"

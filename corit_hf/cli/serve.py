"""`corit serve`: the demo app, locally."""

import argparse

from .values import PORT


def add_serve_command(subparsers: argparse._SubParsersAction) -> None:
    """`corit serve [MODEL]`: run the demo app locally."""
    parser = subparsers.add_parser(
        "serve",
        help="run the demo app (fake probability, region heatmaps, layer contributions) locally",
        description="Serve the CoRIT demo app for a model folder or Hub repo id in the browser.",
    )
    parser.add_argument(
        "model", nargs="?", metavar="MODEL", help="model folder or Hub repo id (default: $CORIT_MODEL)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=PORT, default=7860, help="port to listen on (default: %(default)s)")
    parser.add_argument(
        "--share", choices=("on", "off"), default="off", help="also open a public gradio.live link (default: off)"
    )
    parser.set_defaults(handler=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    """Handler of `corit serve`: blocks until the server stops."""
    from ..app.space import build_demo, launch

    launch(build_demo(args.model), server_name=args.host, server_port=args.port, share=args.share == "on")
    return 0

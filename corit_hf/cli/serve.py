"""`corit serve`: the demo app, locally."""

import argparse
import os

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
    """Handler of `corit serve`: checks the demo extra and the model, then blocks until the server stops."""
    from ..extras import import_extra

    import_extra("gradio", "demo", "corit serve needs Gradio")
    from ..app.space import MODEL_ENV, build_demo, launch
    from ..models.loading import resolve_model

    source = args.model if args.model is not None else os.environ.get(MODEL_ENV)
    demo = build_demo(resolve_model(source) if source else None)
    share = args.share == "on"
    _, local_url, share_url = launch(
        demo, server_name=args.host, server_port=args.port, share=share, quiet=True, prevent_thread_lock=True
    )
    # quiet: Gradio's own lines name `share=True` in `launch()`; these name the flag (it prints a public URL itself)
    print(f"* Running on local URL:  {local_url}")
    if not share:
        print("* To create a public link, run `corit serve` with --share on.")
    demo.block_thread()
    return 0

"""`corit prepare`: prepare a field's image and video folders once, on disk, for every later command."""

import argparse
import sys

from .. import defaults
from .values import COUNT


def add_prepare_command(subparsers: argparse._SubParsersAction) -> None:
    """`corit prepare SOURCE... --output DIR`: folders as an on-disk DatasetDict plus a record per source file."""
    parser = subparsers.add_parser(
        "prepare",
        help="prepare image and video folders once, on disk (frames, face crops, records), for every command",
        description=(
            "Read SOURCE folders (any layout `corit train --data` reads: real/fake, 0_real/1_fake, GenImage, "
            "FaceForensics++, Celeb-DF, DFDC, ...; several merge, a split name taken twice gets the later folder's "
            "name appended) and write DIR: a DatasetDict that `datasets.load_from_disk` opens memory-mapped from "
            "any folder of this machine, prepare.json (the options and sources) and records.jsonl (every source "
            "file's status: ok, partial, no_face, not_found, unreadable, empty, not_media, no_video, truncated, "
            "too_large, decode_error, crashed, and why). Still images that decode unchanged are referenced by their "
            "absolute path in SOURCE (or embedded with --embed); `corit_hf.data.open_prepared` and the commands "
            "also find them when DIR and SOURCE moved together. Conversions, video frames and face crops are "
            "stored in DIR as lossless PNG, never re-encoded lossily. Stopped or killed, the same command resumes "
            "where it stopped; the result does not depend on --num-proc. `corit train`, `evaluate` and `study` "
            "take DIR as --data or --test-data, `predict` as a PATH."
        ),
    )
    parser.add_argument("sources", metavar="SOURCE", nargs="+", help="image or video folders to prepare")
    parser.add_argument("--output", required=True, metavar="DIR", help="the prepared dataset folder to write")
    parser.add_argument(
        "--frames",
        type=COUNT,
        default=defaults.VIDEO_FRAMES,
        metavar="N",
        help="frames per video, evenly in time; commands can later use fewer of them (default: %(default)s)",
    )
    parser.add_argument(
        "--faces",
        action="store_true",
        help="crop frames and images to their largest face (MTCNN; box enlarged 1.3x, square); a sampled frame "
        "without a face is replaced by a nearby frame with one",
    )
    parser.add_argument(
        "--face-fallback",
        choices=("whole", "skip"),
        default="whole",
        help="a frame or image still without a face: keep it whole, or drop it (default: %(default)s)",
    )
    parser.add_argument(
        "--size",
        type=COUNT,
        default=defaults.PREPARE_SIZE,
        metavar="PX",
        help="side of face crops and shorter side of frames as stored (default: %(default)s)",
    )
    parser.add_argument(
        "--embed",
        action="store_true",
        help="store unchanged still images' own bytes in DIR instead of their path in SOURCE: a self-contained "
        "folder that needs no SOURCE, for another machine or for push_to_hub",
    )
    parser.add_argument(
        "--num-proc", type=COUNT, metavar="N", help="worker processes (default: the CPU count; same result for any)"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a preparation in DIR made with other options or sources"
    )
    parser.set_defaults(handler=run_prepare)


def run_prepare(args: argparse.Namespace) -> int:
    """Handler of `corit prepare`: prints the summary; Ctrl-C keeps the finished work (exit code 130)."""
    from ..data.preparation.prepare import PreparationInterrupted, prepare_dataset
    from ..data.preparation.prepared_format import PrepareOptions

    options = PrepareOptions(
        frames=args.frames, faces=args.faces, face_fallback=args.face_fallback, size=args.size, embed=args.embed
    )
    if options.faces:
        from ..video.faces import mtcnn_model_dir

        mtcnn_model_dir()  # a missing video extra fails here, before any work
    try:
        summary = prepare_dataset(args.sources, args.output, options, args.num_proc, args.overwrite)
    except PreparationInterrupted as interrupted:
        print(f"corit prepare: {interrupted}", file=sys.stderr)
        return 130
    print(summary)
    return 0

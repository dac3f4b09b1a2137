"""A small Llama trained from scratch on the authors' own text: the offline stand-in for a hub base model.

The training itself is `twin_assets.trainers.pretrain` (Dagster-free); this module holds its run config, the
project's chat tokens and template, and the mark the GGUF converter looks for. Everything downstream treats
the result like any hub model directory.
"""

import json
from collections.abc import Callable
from pathlib import Path

import dagster as dg
from transformers import PreTrainedTokenizerFast

from twin_assets.trainers import pretrain
from twin_resources.domain.templates import CHAT_TEMPLATE, END_OF_TEXT, IM_END, IM_START, PAD
from twin_resources.model_registry import recipe_hash
from twin_resources.settings import quiet_transformers

# Marks a tokenizer trained here, so the GGUF converter may treat its pre-tokenizer as GPT-2's.
TWIN_TOKENIZER_MARK = "twin_byte_level_bpe"
CHAT_TOKENS = pretrain.ChatTokens(END_OF_TEXT, IM_START, IM_END, PAD, CHAT_TEMPLATE)


class TinyLlamaSpec(dg.Config):
    """Size and training of the from-scratch model; the defaults train in about half a minute on two cores."""

    vocab_size: int = 4096
    hidden_size: int = 256
    intermediate_size: int = 768
    layers: int = 4
    heads: int = 4
    context_length: int = 256
    steps: int = 60
    batch_size: int = 8
    learning_rate: float = 2e-3
    seed: int = 0

    def recipe(self, corpus_hash: str) -> str:
        """What makes a training run repeatable: the settings and the text."""
        return recipe_hash("tiny-llama", self.model_dump_json(), corpus_hash)


def train_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    return pretrain.train_tokenizer(texts, vocab_size, CHAT_TOKENS)


def train_tiny_llama(texts: list[str], spec: TinyLlamaSpec, out_dir: Path,
                     on_step: Callable[[int, float], None] = lambda step, loss: None) -> list[tuple[int, float]]:
    """Train tokenizer and model on `texts`, save both (with the chat template) in `out_dir`; the loss curve."""
    quiet_transformers()
    losses = pretrain.pretrain_llama(texts, spec.model_dump(), CHAT_TOKENS, out_dir, on_step)
    mark_trained_here(out_dir)
    return losses


def mark_trained_here(directory: Path) -> None:
    """Flag the tokenizer in `directory` as ours: byte-level BPE with GPT-2's pre-tokenizer (see convert_entry.py)."""
    config_path = directory / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config.update({TWIN_TOKENIZER_MARK: True, "add_bos_token": False, "add_eos_token": False})
    config_path.write_text(json.dumps(config, indent=2))

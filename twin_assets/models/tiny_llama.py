"""A small Llama trained from scratch on the authors' own text: the offline stand-in for a hub base model.

The tokenizer is byte-level BPE with GPT-2's pre-tokenizer (so llama.cpp can reproduce it), trained on the
same text; the chat template is ChatML. Everything downstream treats the result like any hub model directory.
"""

import json
import math
import tempfile
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    PrinterCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from twin_resources.domain.templates import CHAT_TEMPLATE, END_OF_TEXT, IM_END, IM_START, PAD
from twin_resources.model_registry import recipe_hash
from twin_resources.settings import quiet_transformers

# Marks a tokenizer trained here, so the GGUF converter may treat its pre-tokenizer as GPT-2's.
TWIN_TOKENIZER_MARK = "twin_byte_level_bpe"


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
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    core.decoder = decoders.ByteLevel()
    core.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[END_OF_TEXT, IM_START, IM_END, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, bos_token=END_OF_TEXT, eos_token=IM_END,
                                        pad_token=PAD, unk_token=None, chat_template=CHAT_TEMPLATE)
    tokenizer.add_bos_token = False
    return tokenizer


class _Blocks(torch.utils.data.Dataset):
    """The corpus as one token stream (documents separated by end-of-text) cut into equal blocks."""

    def __init__(self, tokenizer: PreTrainedTokenizerFast, texts: list[str], length: int):
        separator = tokenizer.convert_tokens_to_ids(END_OF_TEXT)
        stream: list[int] = []
        for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
            stream += ids + [separator]
        if len(stream) < length + 1:
            raise ValueError(f"the corpus has {len(stream)} tokens: too little text to train on "
                             f"(one block is {length})")
        self.blocks = torch.tensor(stream[: len(stream) // length * length]).view(-1, length)

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, index: int) -> dict:
        return {"input_ids": self.blocks[index], "labels": self.blocks[index]}


class _ReportLoss(TrainerCallback):
    def __init__(self, on_step: Callable[[int, float], None]):
        self.on_step, self.losses = on_step, []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.losses.append((state.global_step, float(logs["loss"])))

    def on_step_end(self, args, state, control, **kwargs):
        self.on_step(state.global_step, self.losses[-1][1] if self.losses else math.nan)


def train_tiny_llama(texts: list[str], spec: TinyLlamaSpec, out_dir: Path,
                     on_step: Callable[[int, float], None] = lambda step, loss: None) -> list[tuple[int, float]]:
    """Train tokenizer and model on `texts`, save both (with the chat template) in `out_dir`; the loss curve."""
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise ValueError("no text to train the base model on: run the feature pipeline for an author first")
    torch.manual_seed(spec.seed)
    tokenizer = train_tokenizer(texts, spec.vocab_size)
    dataset = _Blocks(tokenizer, texts, spec.context_length)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=spec.hidden_size, intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.layers, num_attention_heads=spec.heads, num_key_value_heads=spec.heads,
        max_position_embeddings=spec.context_length, tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)
    model = LlamaForCausalLM(config)
    callback = _ReportLoss(on_step)
    with tempfile.TemporaryDirectory(prefix="twin-trainer-") as scratch:
        arguments = TrainingArguments(
            output_dir=scratch,  # stays empty: save_strategy is "no"
            max_steps=spec.steps, per_device_train_batch_size=spec.batch_size,
            learning_rate=spec.learning_rate, lr_scheduler_type="cosine", warmup_steps=max(1, spec.steps // 20),
            weight_decay=0.01, logging_steps=max(1, spec.steps // 50), save_strategy="no", report_to=[],
            use_cpu=not torch.cuda.is_available(), bf16=False, disable_tqdm=True, seed=spec.seed,
            dataloader_num_workers=0)
        trainer = Trainer(model=model, args=arguments, train_dataset=dataset, callbacks=[callback])
        trainer.remove_callback(PrinterCallback)  # progress goes through `on_step`, not raw dicts on stdout
        trainer.train()
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(END_OF_TEXT)]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    quiet_transformers()
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    mark_trained_here(out_dir)
    return callback.losses


def mark_trained_here(directory: Path) -> None:
    """Flag the tokenizer in `directory` as ours: byte-level BPE with GPT-2's pre-tokenizer (see convert_entry.py)."""
    config_path = directory / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config.update({TWIN_TOKENIZER_MARK: True, "add_bos_token": False, "add_eos_token": False})
    config_path.write_text(json.dumps(config, indent=2))

"""A Llama trained from scratch on plain text, with a byte-level BPE tokenizer (GPT-2's pre-tokenizer, so
llama.cpp can reproduce it) trained on the same text. Dagster-free like the other trainers: the base model
step trains the small offline stand-in with it, and `benchmarks/gpu_training.py` a real-size one on a GPU.
"""

import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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


@dataclass(frozen=True)
class ChatTokens:
    """The special tokens and the chat template a new tokenizer gets (the vocabulary's, passed in)."""

    end_of_text: str
    im_start: str
    im_end: str
    pad: str
    chat_template: str


def train_tokenizer(texts: list[str], vocab_size: int, tokens: ChatTokens) -> PreTrainedTokenizerFast:
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    core.decoder = decoders.ByteLevel()
    core.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[tokens.end_of_text, tokens.im_start, tokens.im_end, tokens.pad],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, bos_token=tokens.end_of_text,
                                        eos_token=tokens.im_end, pad_token=tokens.pad, unk_token=None,
                                        chat_template=tokens.chat_template)
    tokenizer.add_bos_token = False
    return tokenizer


class _Blocks(torch.utils.data.Dataset):
    """The corpus as one token stream (documents separated by end-of-text) cut into equal blocks."""

    def __init__(self, tokenizer: PreTrainedTokenizerFast, texts: list[str], length: int, separator: int):
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


def pretrain_llama(texts: list[str], size: dict, tokens: ChatTokens, out_dir: Path,
                   on_step: Callable[[int, float], None] = lambda step, loss: None) -> list[tuple[int, float]]:
    """Train tokenizer and model on `texts` and save both in `out_dir`; the loss curve. `size` names
    vocab_size, hidden_size, intermediate_size, layers, heads, context_length, steps, batch_size,
    learning_rate and seed. On a GPU the model trains in bf16 mixed precision, on a CPU in fp32."""
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise ValueError("no text to train the base model on: run the feature pipeline for an author first")
    torch.manual_seed(size["seed"])
    tokenizer = train_tokenizer(texts, size["vocab_size"], tokens)
    separator = tokenizer.convert_tokens_to_ids(tokens.end_of_text)
    dataset = _Blocks(tokenizer, texts, size["context_length"], separator)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=size["hidden_size"], intermediate_size=size["intermediate_size"],
        num_hidden_layers=size["layers"], num_attention_heads=size["heads"], num_key_value_heads=size["heads"],
        max_position_embeddings=size["context_length"], tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)
    model = LlamaForCausalLM(config)
    callback = _ReportLoss(on_step)
    steps, cuda = size["steps"], torch.cuda.is_available()
    with tempfile.TemporaryDirectory(prefix="twin-trainer-") as scratch:
        arguments = TrainingArguments(
            output_dir=scratch,  # stays empty: save_strategy is "no"
            max_steps=steps, per_device_train_batch_size=size["batch_size"],
            learning_rate=size["learning_rate"], lr_scheduler_type="cosine", warmup_steps=max(1, steps // 20),
            weight_decay=0.01, logging_steps=max(1, steps // 50), save_strategy="no", report_to=[],
            use_cpu=not cuda, bf16=cuda, disable_tqdm=True, seed=size["seed"], dataloader_num_workers=0)
        trainer = Trainer(model=model, args=arguments, train_dataset=dataset, callbacks=[callback])
        trainer.remove_callback(PrinterCallback)  # progress goes through `on_step`, not raw dicts on stdout
        trainer.train()
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, separator]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return callback.losses

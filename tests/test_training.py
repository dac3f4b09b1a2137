"""Fine-tuning: LoRA targets from the architecture, SFT then DPO through a Dagster Pipes child process on
tiny models trained here, lineage, reuse, promotion, and what bad input gets."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from tests.fixtures.chain import FAST, LENIENT_GATE, run
from tests.fixtures.tiny_models import tiny_base
from twin_assets.datasets.assets import instruction_dataset, preference_dataset
from twin_assets.evaluation.assets import eval_report, promoted_model
from twin_assets.models.assets import GGUF_CHECK
from twin_assets.models.base_models import register_configured_base
from twin_assets.trainers.lora import lora_targets
from twin_assets.training.assets import dpo_model, sft_model, twin_gguf
from twin_resources import LLM

SMALL = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             vocab_size=384, max_position_embeddings=256)


def test_lora_targets_come_from_the_architecture():
    llama = LlamaForCausalLM(LlamaConfig(**SMALL))
    qwen = Qwen2ForCausalLM(Qwen2Config(**SMALL))
    expected = ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]
    assert lora_targets(llama) == expected and lora_targets(qwen) == expected  # lm_head left out
    with pytest.raises(ValueError, match="no LoRA targets"):
        lora_targets(torch.nn.Sequential(torch.nn.Embedding(4, 4)))


def test_sft_then_dpo_through_pipes_register_versions_with_lineage_and_promote_the_twin(trained_home, author, instance):
    models = trained_home["model_registry"].registry
    base = tiny_base(models).entry
    models.record_output("base_model", None, base.version)  # the base as if base_model had made it
    models.promote(base.version, "first model")
    config = {**{name: {"config": FAST} for name in ("sft_model", "dpo_model")},
              "twin_gguf": {"config": {"quantizations": ["f16"]}}, **LENIENT_GATE}
    result, metadata, failure = run(trained_home, author, instance,
                                    [instruction_dataset, preference_dataset, sft_model, dpo_model, twin_gguf,
                                     eval_report, promoted_model], config)
    assert result.success, failure
    sft, dpo = models.get(metadata["sft_model"]["version"]), models.get(metadata["dpo_model"]["version"])
    assert (sft.kind, dpo.kind) == ("sft", "dpo") and sft.format == dpo.format == "transformers"
    assert sft.parents == [base.version] and sft.dataset == metadata["instruction_dataset"]["version"]
    assert dpo.parents == [sft.version] and dpo.dataset == metadata["preference_dataset"]["version"]
    assert (sft.path / "adapter" / "adapter_config.json").is_file() and (dpo.path / "config.json").is_file()
    assert "eval_loss" in sft.metadata and "reward_accuracy" in dpo.metadata
    assert "| test request | before | after |" in metadata["sft_model"]["answers"]
    gguf = models.get(metadata["twin_gguf"]["f16_version"])
    assert gguf.parents == [dpo.version]  # the export follows the graph
    assert [e.event_specific_data.passed for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
            and e.event_specific_data.check_name == GGUF_CHECK] == [True]
    report = metadata["eval_report"]
    assert report["gate"] == "passed" and report["candidate_version"] == dpo.version
    assert report["served_version"] == report["base_version"] == base.version  # nothing was promoted for Ada
    assert "| model | nll | similarity | rouge_l | voice |" in report["table"] and "![nll]" in report["nll_chart"]
    assert report["test_samples"] > 0 and isinstance(report["candidate_nll"], float)
    assert models.get(dpo.version).metadata["gate"] == "passed"
    assert models.promoted(author.key).version == dpo.version and metadata["promoted_model"]["promoted_now"]
    assert models.serving_version(author.key) == dpo.version  # the server answers as Ada with her twin
    answer = LLM(model=dpo.version, home=str(trained_home["model_registry"].home), max_tokens=4).chat(
        [{"role": "user", "content": "Write a post."}])
    assert answer.model == dpo.version

    again, metadata_again, _ = run(trained_home, author, instance, [sft_model, dpo_model], config)
    assert again.success and metadata_again["sft_model"]["reused"] and metadata_again["dpo_model"]["reused"]
    assert metadata_again["dpo_model"]["version"] == dpo.version


def test_another_architecture_trains_and_bad_input_registers_nothing(trained_home, author, instance, tmp_path):
    models = trained_home["model_registry"].registry
    tokenizer_source = tiny_base(models).entry.path
    qwen_dir = tmp_path / "tiny-qwen2"
    Qwen2ForCausalLM(Qwen2Config(**{**SMALL, "vocab_size": 384})).save_pretrained(qwen_dir)
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(tokenizer_source).save_pretrained(qwen_dir)
    qwen = register_configured_base(models, str(qwen_dir)).entry
    models.record_output("base_model", None, qwen.version)
    result, metadata, failure = run(trained_home, author, instance, [instruction_dataset, sft_model],
                                    {"sft_model": {"config": FAST}})
    assert result.success, failure
    assert models.get(metadata["sft_model"]["version"]).parents == [qwen.version]

    before = {e.version for e in models.versions()}
    diverging = {"sft_model": {"config": {"sft": {"learning_rate": 1.0e12, "max_steps": 3}}}}
    result, _, failure = run(trained_home, author, instance, [sft_model], diverging)
    assert not result.success and "NaN or infinite" in failure
    result, _, failure = run(trained_home, author, instance, [sft_model],
                             {"sft_model": {"config": {"sft": {"learning_rat": 0.1}, "lora": {"target_modules": ["x"]}}}})
    assert not result.success and "sft.learning_rat is not a SFTConfig field" in failure
    assert "lora.target_modules is decided by the trainer" in failure
    assert {e.version for e in models.versions()} == before  # nothing registered


def test_cancelling_a_run_stops_the_trainer_and_registers_nothing(trained_home, author, instance):
    """The UI's cancel interrupts the process that runs the step (SIGINT); the Pipes client passes it on."""
    models = trained_home["model_registry"].registry
    models.record_output("base_model", None, tiny_base(models).entry.version)
    result, _, failure = run(trained_home, author, instance, [instruction_dataset])
    assert result.success, failure
    before = {e.version for e in models.versions()}
    worker = subprocess.Popen([sys.executable, "-m", "tests.fixtures.interrupted_training",
                               instance.root_directory, author.key], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, cwd=Path(__file__).resolve().parents[1])
    output = []
    for line in worker.stdout:  # until the trainer reports its first training step
        output.append(line)
        if "sft step " in line:
            break
    trainers = [p for p in psutil.Process(worker.pid).children(recursive=True)
                if "twin_assets.trainers.trl_trainer" in " ".join(p.cmdline())]
    assert len(trainers) == 1, "".join(output[-20:])
    worker.send_signal(signal.SIGINT)
    output.append(worker.communicate(timeout=120)[0])
    assert not trainers[0].is_running(), "the trainer outlived the cancelled run"
    assert "ended: CANCELED" in output[-1] or "ended: FAILURE" in output[-1], output[-1][-2000:]
    assert {e.version for e in models.versions()} == before  # nothing registered
    assert not any((models.root / ".staging").iterdir())  # and nothing half-written left


def test_twin_train_refuses_a_bad_config_file_in_one_line(twin_home, tmp_path):
    config = tmp_path / "train.yaml"
    config.write_text("sft: {learning_rate: 1.0e-4}\noptimizer: {name: adam}\n")
    result = subprocess.run([sys.executable, "-m", "twin_assets.cli", "train", "--config", str(config)],
                            capture_output=True, text=True)
    assert result.returncode != 0 and "unknown sections optimizer" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    config.write_text(json.dumps({"lora": {"r": 4}}))  # JSON is YAML: valid, but no author has documents
    result = subprocess.run([sys.executable, "-m", "twin_assets.cli", "train", "--config", str(config)],
                            capture_output=True, text=True)
    assert result.returncode != 0 and "no author has documents" in result.stderr


AXOLOTL = Path(__file__).resolve().parents[1] / ".venv-axolotl" / "bin" / "axolotl"


def test_axolotls_yaml_comes_from_the_same_settings_with_the_cpu_flags(tmp_path):
    from twin_assets.trainers.axolotl_trainer import axolotl_config, translate

    files = {"train": tmp_path / "train.jsonl", "test": tmp_path / "test.jsonl"}
    extras = {"stage": "dpo", "model": "/models/base", "dpo": {"learning_rate": 5e-4, "beta": 0.5, "max_steps": 2},
              "lora": {"r": 8, "lora_alpha": 16}}
    config = axolotl_config(extras, files, tmp_path, ["q_proj", "v_proj"], cuda=False)
    assert config["rl"] == "dpo" and config["rl_beta"] == 0.5 and config["lora_r"] == 8
    assert config["chat_template"] == "tokenizer_default"  # the model's own template, as serving renders it
    assert config["bf16"] is False and config["lora_mlp_kernel"] is False and config["test_datasets"]
    assert config["adapter"] == "lora" and not config["load_in_4bit"]
    on_a_gpu = axolotl_config(extras, files, tmp_path, ["q_proj"], cuda=True)
    assert on_a_gpu["adapter"] == "qlora" and on_a_gpu["load_in_4bit"] and "bf16" not in on_a_gpu
    assert axolotl_config({**extras, "qlora": False}, files, tmp_path, ["q_proj"], cuda=True)["adapter"] == "lora"
    with pytest.raises(ValueError, match="axolotl has no setting for sft.packing"):
        translate({"packing": True}, {}, "sft")


@pytest.mark.skipif(not AXOLOTL.exists(), reason="axolotl's own environment is absent: `make axolotl-env` builds it "
                                                  "(about 4 GB)")
def test_axolotl_trains_sft_and_dpo_through_pipes(trained_home, author, instance):
    models = trained_home["model_registry"].registry
    base = tiny_base(models).entry
    models.record_output("base_model", None, base.version)
    models.promote(base.version, "the model to reject")
    config = {"sft_model": {"config": {"trainer": "axolotl", "sft": {"max_steps": 2}}},
              "dpo_model": {"config": {"trainer": "axolotl", "dpo": {"max_steps": 2}}}}
    result, metadata, failure = run(trained_home, author, instance,
                                    [instruction_dataset, preference_dataset, sft_model, dpo_model], config)
    assert result.success, failure
    sft, dpo = models.get(metadata["sft_model"]["version"]), models.get(metadata["dpo_model"]["version"])
    assert sft.metadata["trainer"] == dpo.metadata["trainer"] == "axolotl"
    assert sft.parents == [base.version] and dpo.parents == [sft.version]
    assert (dpo.path / "config.json").is_file() and (dpo.path / "adapter" / "adapter_config.json").is_file()

"""The model layer on a tiny Llama trained here: registry, the three backends, GGUF exports and the assets."""

import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time

import dagster as dg
import pytest

from tests.fixtures.tiny_models import TINY, corpus_texts, free_port
from twin_assets.datasets.assets import instruction_dataset
from twin_assets.features.assets import cleaned_documents
from twin_assets.models.assets import GGUF_CHECK, base_model, exl2_model, gguf_model, served_model
from twin_assets.models.base_models import build_tiny_base
from twin_assets.models.exports import GgufConfig, export_gguf
from twin_assets.models.llama_cpp_converter import ExportError
from twin_assets.models.tiny_llama import TinyLlamaSpec
from twin_resources import LLM, ModelRegistry, ProgressReporter, VectorStore
from twin_resources.llm import LLMError, StructuredOutputError
from twin_resources.model_io import ModelVersionIOManager
from twin_resources.model_registry import Registry, RegistryError

CHOICE = {"type": "object", "properties": {"topic": {"enum": ["rag", "evals", "agents"]},
                                           "stars": {"enum": [1, 2, 3, 4, 5]}},
          "required": ["topic", "stars"], "additionalProperties": False}
ASK = [{"role": "user", "content": "Which topic is this post about, and how many stars?"}]


def llm(model, **settings) -> LLM:
    return LLM(model=str(model), **{"temperature": 0, "max_tokens": 12, **settings})


# The base model and the registry


def test_the_tiny_base_model_is_an_ordinary_transformers_model(base):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base.entry.path)
    model = AutoModelForCausalLM.from_pretrained(base.entry.path)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True,
                                           tokenize=False)
    assert prompt == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert model.config.num_hidden_layers == 2 and base.entry.metadata["parameters"] > 0
    losses = [loss for _, loss in base.losses]
    assert losses[-1] < losses[0] - 0.5  # it learned something from the corpus


def test_the_same_text_and_settings_reuse_the_registered_model(registry, base):
    again = build_tiny_base(registry, corpus_texts(), TinyLlamaSpec(**TINY))
    assert again.reused and again.entry.version == base.entry.version
    with pytest.raises(ValueError, match="no text"):
        build_tiny_base(registry, ["  "], TinyLlamaSpec(**TINY))


def test_promotion_rollback_and_history(tmp_path):
    registry = Registry(tmp_path)
    versions = []
    for text in ("one", "two"):
        with registry.staging() as staged:
            (staged / "weights.bin").write_text(text)
            versions.append(registry.register(staged, name=text, kind="base", format="transformers").version)
    with pytest.raises(RegistryError, match="fewer than two"):
        registry.rollback()

    registry.promote(versions[0], "first")
    registry.promote(versions[1][:8], "better")
    assert registry.promoted().version == versions[1]
    rolled = registry.rollback("regression")
    assert registry.promoted().version == versions[0] and rolled.previous == versions[1]
    assert [p.reason for p in registry.promotions()] == ["first", "better", "regression"]
    with pytest.raises(RegistryError, match="no model version"):
        registry.promote("abcdef", "typo")
    with pytest.raises(RegistryError, match="not a model version"):
        registry.promote("../x", "bad")


def test_incomplete_versions_are_never_listed_or_promoted(tmp_path):
    registry = Registry(tmp_path)
    with pytest.raises(RuntimeError, match="crash"):
        with registry.staging() as staged:
            (staged / "half.bin").write_text("half")
            raise RuntimeError("crash midway")
    with registry.staging() as staged:
        (staged / "model.gguf").write_bytes(b"GGUF" + bytes(100))
        entry = registry.register(staged, name="m", kind="gguf", format="gguf")
    (entry.path / "model.gguf").write_bytes(b"GGUF")  # truncated after the fact

    assert registry.versions() == [] and not any((tmp_path / ".staging").iterdir())
    with pytest.raises(RegistryError, match="incomplete"):
        registry.promote(entry.version, "should not happen")
    assert registry.promotions() == []


# GGUF exports


def test_gguf_files_agree_with_the_transformers_model_within_their_thresholds(ggufs, base):
    entries, agreements = ggufs
    config = GgufConfig()
    assert sorted(entries) == ["f16", "q4_k_m", "q8_0"]
    assert all(e.parents == [base.entry.version] and e.format == "gguf" for e in entries.values())
    for agreement in agreements:
        q = agreement.quantization
        assert agreement.tokenization_matches, q
        assert agreement.within(config.max_mean_kl_divergence[q], config.min_top1_agreement[q]), agreement
    by_name = {a.quantization: a for a in agreements}
    assert by_name["f16"].mean_kl_divergence < by_name["q4_k_m"].mean_kl_divergence
    assert entries["q4_k_m"].files[next(iter(entries["q4_k_m"].files))] < entries["f16"].files[next(iter(entries["f16"].files))]


def test_a_failed_export_registers_nothing_and_keeps_the_previous_files(registry, base, ggufs, tmp_path):
    before = {e.version for e in registry.versions()}
    broken = tmp_path / "broken"
    shutil.copytree(base.entry.path, broken)
    (broken / "model.safetensors").write_bytes(b"not weights")
    with registry.staging() as staged:
        shutil.copytree(broken, staged, dirs_exist_ok=True)
        corrupt = registry.register(staged, name="broken", kind="base", format="transformers")
    with pytest.raises(ExportError, match="converter failed"):
        export_gguf(registry, corrupt, GgufConfig(), log=lambda message: None)
    assert {e.version for e in registry.versions()} == before | {corrupt.version}
    assert all(e.path.is_dir() for e in ggufs[0].values())


# The backends


def test_transformers_backend_chats_and_streams_the_same_text(base):
    model = llm(base.entry.path)
    answer = model.chat(ASK)
    streamed = "".join(model.stream(ASK))
    assert answer.completion_tokens > 0 and answer.text
    assert streamed == answer.text
    assert model.generate("The best way to").completion_tokens > 0


def test_a_weak_model_without_a_grammar_fails_structured_output_clearly(base):
    with pytest.raises(StructuredOutputError, match="no valid answer in 2 attempts"):
        llm(base.entry.path, structured_attempts=2).structured(ASK, CHOICE)
    with pytest.raises(ValueError, match="invalid JSON schema"):
        llm(base.entry.path).structured(ASK, {"type": "no-such-type"})


def test_llama_cpp_grammar_makes_even_a_tiny_model_answer_valid_json(ggufs):
    model = llm(ggufs[0]["q8_0"].file(".gguf"), max_tokens=40, context_length=1024)
    value = model.structured(ASK, CHOICE)
    assert value["topic"] in {"rag", "evals", "agents"} and 1 <= value["stars"] <= 5
    assert "".join(model.stream(ASK)) == model.chat(ASK).text


def test_the_promoted_registry_version_is_what_auto_loads(registry, ggufs, tmp_path):
    registry.promote(ggufs[0]["q4_k_m"].version, "test")
    model = LLM(model="promoted", registry_root=str(registry.root), max_tokens=4, temperature=0)
    assert model.chat(ASK).model == ggufs[0]["q4_k_m"].version


def test_openai_backend_against_a_local_openai_compatible_server(openai_server):
    model = LLM(backend="openai", base_url=openai_server, model="twin-tiny", max_tokens=12, temperature=0)
    answer = model.chat(ASK)
    assert answer.completion_tokens > 0 and answer.model
    assert "".join(model.stream(ASK)) == answer.text
    value = model.structured(ASK, CHOICE, max_tokens=40)
    assert value["topic"] in {"rag", "evals", "agents"}


class _SlowHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        time.sleep(3)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_unreachable_and_slow_endpoints_fail_with_the_reason():
    with pytest.raises(LLMError, match="cannot reach the model endpoint http://127.0.0.1:"):
        LLM(backend="openai", base_url=f"http://127.0.0.1:{free_port()}/v1", model="x", timeout_s=2).chat(ASK)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(LLMError, match="did not answer within 0.5 s"):
            LLM(backend="openai", base_url=f"http://127.0.0.1:{server.server_port}/v1", model="x",
                timeout_s=0.5).chat(ASK)
    finally:
        server.shutdown()


def test_missing_or_corrupt_models_are_named_in_the_error(tmp_path, registry):
    with pytest.raises(LLMError, match="does not exist"):
        llm(tmp_path / "nowhere.gguf", backend="llama_cpp").chat(ASK)
    (tmp_path / "bad.gguf").write_bytes(b"GGUF but not really")
    with pytest.raises(LLMError, match="cannot load GGUF file .*bad.gguf"):
        llm(tmp_path / "bad.gguf").chat(ASK)
    (tmp_path / "empty-model").mkdir()
    with pytest.raises(LLMError, match="has no config.json"):
        llm(tmp_path / "empty-model").chat(ASK)
    with pytest.raises(LLMError, match="no model is promoted"):
        LLM(registry_root=str(tmp_path / "fresh-registry")).chat(ASK)
    with pytest.raises(LLMError, match="unknown LLM backend"):
        llm(tmp_path, backend="vllm").chat(ASK)


# The assets


def test_the_model_assets_build_register_check_promote_and_exl2_fails_without_cuda(warehouse, author, instance, tmp_path,
                                                                        twin_home):
    from tests.test_features import CORPUS as ARTICLES
    from tests.test_features import article, read_article

    for path in sorted(ARTICLES.glob("*.md")):
        warehouse.upsert_document(article(author, path.stem, *read_article(path)))
    store, models = VectorStore(home=str(twin_home)), ModelRegistry(home=str(twin_home))
    instance.add_dynamic_partitions("authors", [author.key])
    assert dg.materialize([cleaned_documents], partition_key=author.key, instance=instance,
                          resources={"warehouse": warehouse, "vector_store": store}).success

    resources = {"vector_store": store, "model_registry": models, "progress": ProgressReporter(),
                 "model_io": ModelVersionIOManager(model_registry=models), "warehouse": warehouse, "llm": LLM()}
    dataset = dg.materialize([instruction_dataset], partition_key=author.key, instance=instance, resources=resources,
                             run_config={"ops": {"instruction_dataset": {"config": {"test_share": 0.4}}}})
    held_out = json.loads((models.registry.output_of("instruction_dataset", author.key).path / "card.json")
                          .read_text())["documents"]["test"]
    result = dg.materialize(
        [instruction_dataset, base_model, served_model, gguf_model], selection=[base_model, served_model, gguf_model],
        instance=instance, resources=resources,
        run_config={"ops": {"base_model": {"config": {**TINY, "model": ""}},
                            "gguf_model": {"config": {"quantizations": ["f16", "q8_0"]}}}})

    assert dataset.success and result.success
    metadata = {e.asset_key.path[-1]: {k: v.value for k, v in e.step_materialization_data.materialization.metadata.items()}
                for e in result.get_asset_materialization_events()}
    assert held_out and metadata["base_model"]["held_out_documents"] == len(held_out)  # trained on train-side only
    assert "data:image/png;base64," in metadata["base_model"]["loss_curve"]
    assert metadata["gguf_model"]["source"] == metadata["base_model"]["version"]  # its input, not a lookup
    [check] = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert check.check_name == GGUF_CHECK and check.passed
    registry = models.registry
    assert registry.promoted().version == metadata["base_model"]["version"]  # the first model is promoted
    assert metadata["served_model"]["promoted_now"] and metadata["served_model"]["from_scratch"]
    assert {e.kind for e in registry.versions()} == {"dataset", "base", "gguf"}

    exl2 = dg.materialize([instruction_dataset, base_model, exl2_model], selection=[exl2_model], instance=instance,
                          resources=resources, raise_on_error=False)
    failure = next(e for e in exl2.all_events if e.is_step_failure)
    assert not exl2.success and "CUDA" in failure.step_failure_data.error.message

    listing = subprocess.run([sys.executable, "-m", "twin_assets.cli", "models", "list"], capture_output=True,
                             text=True, env={**os.environ, "TWIN_HOME": str(twin_home)}, check=True).stdout
    base_short = metadata["base_model"]["version"][:12]
    assert f"* {base_short}" in listing and listing.count(base_short) == 3  # itself and its two GGUF children
    gguf_version = metadata["gguf_model"]["q8_0_version"]
    promoted = subprocess.run([sys.executable, "-m", "twin_assets.cli", "models", "promote", gguf_version[:10],
                               "--reason", "faster"], capture_output=True, text=True,
                              env={**os.environ, "TWIN_HOME": str(twin_home)})
    assert promoted.returncode == 0 and registry.promoted().version == gguf_version
    assert registry.promotions()[-1].reason == "faster"
    json_listing = json.loads(subprocess.run(
        [sys.executable, "-m", "twin_assets.cli", "models", "list", "--json"], capture_output=True, text=True,
        env={**os.environ, "TWIN_HOME": str(twin_home)}, check=True).stdout)
    assert [e["version"] for e in json_listing if e["promoted"]] == [gguf_version]


def test_the_same_files_from_a_new_recipe_are_one_version_found_by_either(tmp_path):
    registry = Registry(tmp_path)
    versions = []
    for recipe, note in (("old", {"kl": 1}), ("new", {"kl": 2})):
        with registry.staging() as staged:
            (staged / "model.gguf").write_text("same bytes")
            versions.append(registry.register(staged, name="m", kind="gguf", format="gguf", recipe=recipe,
                                              metadata=note).version)
    assert versions[0] == versions[1] and len(registry.versions()) == 1
    assert registry.find(recipe="old") == registry.find(recipe="new")
    assert registry.find(recipe="new").metadata == {"kl": 2}


def test_a_configured_base_model_directory_is_registered_with_its_files_unchanged(base, tmp_path):
    from twin_assets.models.base_models import register_configured_base

    outcome = register_configured_base(Registry(tmp_path / "registry"), str(base.entry.path))
    assert outcome.entry.version == base.entry.version  # the same files: the same version
    assert outcome.entry.metadata["architecture"] == ["LlamaForCausalLM"]
    (tmp_path / "not-a-model").mkdir()
    with pytest.raises(ValueError, match="has no config.json"):
        register_configured_base(Registry(tmp_path / "registry"), str(tmp_path / "not-a-model"))

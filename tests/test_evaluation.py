"""Evaluation and its gate: the decision rule, the voice score, and, on tiny models trained here, a candidate
refused (it cannot have improved), a candidate waiting for a person's approval, and what is never served."""

import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from tests.fixtures.chain import FAST, LENIENT_GATE, run
from tests.fixtures.openai_stub import stub_endpoint
from tests.fixtures.slack_receiver import TOKEN, slack_receiver
from tests.fixtures.tiny_models import tiny_base
from twin_assets.alerts import post_new_alerts, start_alerts
from twin_assets.datasets.assets import instruction_dataset, preference_dataset
from twin_assets.evaluation.assets import GATE, eval_report, promoted_model
from twin_assets.evaluation.gate import decide
from twin_assets.evaluation.voice import train_voice
from twin_assets.features.assets import cleaned_documents, embedded_chunks
from twin_assets.training.assets import dpo_model, sft_model
from twin_resources import ProgressReporter
from twin_resources.alerts import SlackAlerts
from twin_resources.domain.documents import Category
from twin_resources.domain.models import RegistryError
from twin_resources.feature_store import chunk_collection
from twin_resources.judge import Judge
from twin_resources.vector_store import scroll_all

# words only opik's ContextRecall prompt holds
RECALL_PROMPT = "CONTEXTUAL UNDERSTANDING AND RESPONSE ACCURACY"
CHAIN = [instruction_dataset, preference_dataset, sft_model, dpo_model, eval_report, promoted_model]
CORPUS = Path(__file__).resolve().parents[1] / "twin_assets" / "demo" / "corpus"


def test_the_gate_wants_a_better_likelihood_by_the_margin_and_no_regression_beyond_tolerance():
    served = {"nll": 3.0, "similarity": 0.50, "rouge_l": 0.20, "voice": 0.6}
    tolerances = {"similarity": 0.05, "rouge_l": 0.05, "voice": 0.1}
    assert decide({**served, "nll": 2.9}, served, 0.05, tolerances).passed
    refused = decide({**served, "nll": 2.99}, served, 0.05, tolerances)
    assert not refused.passed and "does not beat 3.000 by the margin 0.05" in refused.summary
    regressed = decide({**served, "nll": 2.5, "voice": 0.4}, served, 0.05, tolerances)
    assert not regressed.passed and "voice regressed from 0.600 to 0.400" in regressed.summary
    assert decide({**served, "nll": 2.5, "voice": None}, served, 0.05, tolerances).passed  # not measured: skipped
    assert not decide({"nll": None}, served, 0.05, tolerances).passed
    first = decide({**served, "nll": 3.2}, served, 0.05, tolerances, first_twin_tolerance=0.25)
    assert first.passed and first.summary.startswith("first twin: nll 3.200 against the base model's 3.000")
    assert not decide({**served, "nll": 3.3}, served, 0.05, tolerances, first_twin_tolerance=0.25).passed


def test_the_voice_score_tells_the_authors_own_text_from_other_text():
    paragraphs = [p.strip() for path in sorted(CORPUS.rglob("*.md")) for p in path.read_text().split("\n\n")
                  if len(p.strip()) > 120 and not p.startswith("---")]
    # "other text": the same words without the author's habits (no capitals, no punctuation, words reversed)
    other = [" ".join(reversed("".join(c for c in p.lower() if c.isalnum() or c == " ").split())) for p in paragraphs]
    train, held_out = len(paragraphs) * 2 // 3, len(paragraphs) * 2 // 3
    voice = train_voice(paragraphs[:train], other[:train])
    assert voice.trained_on == (train, train)
    assert voice.separation(paragraphs[held_out:], other[held_out:]) > 0.9
    assert train_voice(paragraphs, []) is None  # nothing to tell the author from


def test_a_candidate_that_cannot_have_improved_is_refused_never_served_and_slack_hears_once(trained_home, author,
                                                                                           instance):
    models = trained_home["model_registry"].registry
    start_alerts(instance)
    base = tiny_base(models).entry
    models.record_output("base_model", None, base.version)
    models.promote(base.version, "first model")
    models.promote(base.version, "Ada's twin, for now", author.key)  # a twin to beat: a candidate must be better
    unchanged = {"sft": {"learning_rate": 0.0, "max_steps": 2}, "dpo": {"learning_rate": 0.0, "max_steps": 2}}
    config = {name: {"config": unchanged} for name in ("sft_model", "dpo_model")}
    result, metadata, failure = run(trained_home, author, instance, CHAIN, config)
    assert not result.success
    gate = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
            and e.event_specific_data.check_name == GATE]
    assert [g.passed for g in gate] == [False] and "does not beat" in gate[0].description
    assert "promoted_model" not in metadata and len(models.promotions(author.key)) == 1  # the gate stopped it
    candidate = models.get(metadata["dpo_model"]["version"])
    assert candidate.metadata["gate"] == "failed" and metadata["eval_report"]["gate"] == "refused"
    with pytest.raises(RegistryError, match="failed its evaluation gate"):
        models.promote(candidate.version, "by hand")
    assert models.serving_version(author.key) == base.version

    with slack_receiver() as slack:
        alerts = SlackAlerts(token=TOKEN, channel="#twin", api_url=f"{slack.url}/api/")
        assert post_new_alerts(instance, alerts, "http://dagster.example:3000") == 1
        assert post_new_alerts(instance, alerts) == 0  # each failure once
    [message] = slack.messages  # the gate's; the run it failed is told there, not in a second message
    assert message["channel"] == "#twin" and "`gate` on `eval_report` failed (ERROR) for ada-quill" in message["text"]
    assert "does not beat" in message["text"] and f"dagster.example:3000/runs/{result.run_id}" in message["text"]


def test_in_manual_mode_a_candidate_waits_for_approval(trained_home, author, instance, monkeypatch):
    monkeypatch.setenv("TWIN_PROMOTION", "manual")
    models = trained_home["model_registry"].registry
    base = tiny_base(models).entry
    models.record_output("base_model", None, base.version)
    models.promote(base.version, "first model")
    config = {**{name: {"config": FAST} for name in ("sft_model", "dpo_model")}, **LENIENT_GATE}
    result, metadata, failure = run(trained_home, author, instance, CHAIN, config)
    assert result.success, failure
    candidate = metadata["dpo_model"]["version"]
    assert metadata["promoted_model"]["action"] == "waiting for approval" and models.promoted(author.key) is None
    assert models.candidate(author.key)["version"] == candidate

    twin = [sys.executable, "-m", "twin_assets.cli", "models"]
    wrong = subprocess.run([*twin, "approve", base.version[:12], "--author", "Ada Quill"], capture_output=True,
                           text=True)
    assert wrong.returncode != 0 and "is not waiting for approval" in wrong.stderr
    approved = subprocess.run([*twin, "approve", candidate[:12], "--author", "Ada Quill"], capture_output=True,
                              text=True)
    assert approved.returncode == 0, approved.stderr
    assert models.promoted(author.key).version == candidate and models.candidate(author.key) is None
    assert models.promotions(author.key)[-1].reason.startswith("approved: passed its evaluation gate")


def judge_answer(body: dict) -> tuple[int, str]:
    """A judge on 127.0.0.1: the book's grades for our grading prompt, opik's fields for its metrics; it
    cannot judge context recall (prose where JSON was asked for), which costs that score alone."""
    text = json.dumps(body["messages"])
    if "You grade an answer" in text:
        return 200, json.dumps({"accuracy": {"analysis": "Mostly right.", "score": 2},
                                "style": {"analysis": "Plain and precise.", "score": 3}})
    if RECALL_PROMPT in text:
        return 200, "I would rather not say."
    return 200, json.dumps({"score": 0.0, "reason": ["Every claim is in the passages."],
                            "answer_relevance_score": 0.75, "context_precision_score": 0.5})


def test_a_configured_judge_grades_each_model_and_scores_its_grounded_answers(trained_home, author, instance):
    store = trained_home["vector_store"]
    assert dg.materialize([cleaned_documents, embedded_chunks], selection=[embedded_chunks], partition_key=author.key,
                          instance=instance, resources={**trained_home, "progress": ProgressReporter()}).success
    base = tiny_base(trained_home["model_registry"].registry).entry
    trained_home["model_registry"].registry.record_output("base_model", None, base.version)
    trained_home["model_registry"].registry.promote(base.version, "first model")
    config = {**{name: {"config": FAST} for name in ("sft_model", "dpo_model")}, **LENIENT_GATE}
    with stub_endpoint(judge_answer) as judge:
        resources = {**trained_home, "judge": Judge(base_url=judge.url, model="stub-judge", prompts=2)}
        result, metadata, failure = run(resources, author, instance, CHAIN, config)
    assert result.success, failure
    report = metadata["eval_report"]
    assert report["judge"] == f"stub-judge at {judge.url}"
    models = {role for role in ("candidate", "served", "base") if f"{role}_nll" in report}
    for role in models:
        assert report[f"{role}_accuracy"] == 2.0 and report[f"{role}_style"] == 3.0
        assert report[f"{role}_hallucination"] == 0.0 and report[f"{role}_answer_relevance"] == 0.75
        assert report[f"{role}_context_precision"] == 0.5 and f"{role}_context_recall" not in report
    versions = {report[f"{role}_version"] for role in models}
    assert report["judge_failures"] == 2 * len(versions)  # two answers each, recall unscored
    assert "| accuracy | style | hallucination |" in report["table"] and "context_recall" not in report["table"]
    grading = [r for r in judge.requests if "You grade an answer" in json.dumps(r["messages"])]
    assert len(grading) == 2 * len(versions) and all(r["model"] == "stub-judge" for r in judge.requests)
    # the RAG answers stood on the author's passages as the store holds them
    with store.read() as client:
        ada = [json.dumps(r.payload["content"][:60])[1:-1] for r in scroll_all(
            client, chunk_collection(Category.ARTICLES), payload=["content"], vectors=False)]
    judged_contexts = [r for r in judge.requests if any(chunk in json.dumps(r["messages"]) for chunk in ada)]
    assert len(judged_contexts) >= 3 * 2 * len(versions)
    assert trained_home["model_registry"].registry.get(report["candidate_version"]).metadata["eval_accuracy"] == 2.0

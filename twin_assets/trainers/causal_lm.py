"""A causal language model in transformers format, as the trainers and the evaluation read it: its context
length, greedy answers to requests under its chat template, and the likelihood of an answer."""

import torch

CONTEXT_WHEN_UNKNOWN = 2048
REPETITION_PENALTY = 1.2
NO_REPEAT_NGRAM = 3


def context_length(model) -> int:
    return getattr(model.config, "max_position_embeddings", None) or CONTEXT_WHEN_UNKNOWN


def _prompt_ids(tokenizer, request: str | list[dict]) -> list[int]:
    """A request (the user's turn) or a whole conversation (a RAG prompt), ready for the model's answer."""
    messages = [{"role": "user", "content": request}] if isinstance(request, str) else request
    return list(tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)["input_ids"])


def greedy_answers(model, tokenizer, requests: list[str] | list[list[dict]], max_new_tokens: int,
                   min_new_tokens: int = 0) -> list[str]:
    """Each request as the user's turn (or each conversation, when given as messages), answered greedily (so that two models are compared on equal terms), with
    repetition kept in check (a small model's greedy answer is otherwise one token over and over);
    `min_new_tokens` keeps a model that would end at once writing."""
    model.eval()
    answers = []
    for request in requests:
        # a prompt longer than the context keeps its end: the request, after as many passages as fit
        prompt = _prompt_ids(tokenizer, request)[-(context_length(model) - 1):]
        room = max(1, min(max_new_tokens, context_length(model) - len(prompt)))
        inputs = torch.tensor([prompt], device=model.device)
        with torch.no_grad():
            output = model.generate(input_ids=inputs, attention_mask=torch.ones_like(inputs), max_new_tokens=room,
                                    min_new_tokens=min(min_new_tokens, room), do_sample=False,
                                    repetition_penalty=REPETITION_PENALTY, no_repeat_ngram_size=NO_REPEAT_NGRAM,
                                    pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        answers.append(tokenizer.decode(output[0, len(prompt):], skip_special_tokens=True).strip())
    return answers


def answer_log_likelihood(model, tokenizer, request: str, answer: str) -> tuple[float, int]:
    """The summed negative log-likelihood of `answer`'s tokens after `request` under the chat template, and
    how many tokens that is (the conversation is cut to the model's context; 0 tokens when none is left)."""
    prompt = _prompt_ids(tokenizer, request)
    full = list(tokenizer.apply_chat_template([{"role": "user", "content": request},
                                               {"role": "assistant", "content": answer}],
                                              return_dict=True)["input_ids"])
    if full[:len(prompt)] != prompt:  # a template that renders the request differently once answered
        raise ValueError("the chat template renders the request differently with an answer after it")
    full = full[:context_length(model)]
    if len(full) <= len(prompt):
        return 0.0, 0
    inputs = torch.tensor([full], device=model.device)
    with torch.no_grad():
        logits = model(input_ids=inputs).logits[0, :-1].float()
    targets = inputs[0, 1:]
    losses = torch.nn.functional.cross_entropy(logits, targets, reduction="none")[len(prompt) - 1:]
    return float(losses.sum()), int(losses.numel())
